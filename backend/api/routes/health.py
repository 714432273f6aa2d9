"""GET /healthz: is the database reachable, is the broker reachable."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backend.edge.deps import SettingsDep, public
from backend.services.health import check_broker, check_database

router = APIRouter()


class CheckRead(BaseModel):
    ok: bool
    detail: str


class HealthRead(BaseModel):
    status: str  # "ok" or "unavailable"
    database: CheckRead
    broker: CheckRead


@router.get(
    "/healthz",
    response_model=HealthRead,
    dependencies=[Depends(public())],
    responses={503: {"model": HealthRead, "description": "the database or the broker is unreachable"}},
    tags=["system"],
)
def healthz(request: Request, settings: SettingsDep) -> JSONResponse:
    # A sync route: both probes block (a query, a broker round trip), so they run in the threadpool.
    db = check_database(request.app.state.engine)
    broker = check_broker(settings)
    ok = db.ok and broker.ok
    body = HealthRead(
        status="ok" if ok else "unavailable",
        database=CheckRead(ok=db.ok, detail=db.detail),
        broker=CheckRead(ok=broker.ok, detail=broker.detail),
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
