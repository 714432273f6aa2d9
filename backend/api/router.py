"""All JSON routes under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.routes import me

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(me.router)
