"""GET /api/v1/me: who the caller is, by session cookie or API token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from backend.domain.enums import UserRole
from backend.edge.deps import ALL_ROLES, Principal, require

router = APIRouter(tags=["account"])


class MeRead(BaseModel):
    id: int
    email: str
    display_name: str
    role: UserRole
    authenticated_via: str
    scopes: list[str]


@router.get("/me", response_model=MeRead)
def read_me(principal: Annotated[Principal, Depends(require(*ALL_ROLES))]) -> MeRead:
    user = principal.user
    return MeRead(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        authenticated_via=principal.via,
        scopes=sorted(s.value for s in principal.scopes),
    )
