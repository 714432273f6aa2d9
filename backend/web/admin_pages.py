"""Admin pages: the system overview (services, workers, what the database holds)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from backend.domain.enums import UserRole
from backend.edge.deps import DbDep, Principal, SettingsDep, require
from backend.services.health import check_broker, check_database
from backend.services.overview import count_rows, list_worker_heartbeats
from backend.web.pages import render

router = APIRouter(include_in_schema=False)


@router.get("/admin/system", response_class=HTMLResponse)
def system_overview(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(require(UserRole.admin))],
) -> HTMLResponse:
    # A sync route: FastAPI runs it in its threadpool, so the probes and queries (all blocking)
    # never stall the event loop.
    context = {
        "database": check_database(request.app.state.engine),
        "broker": check_broker(settings),
        "counts": count_rows(session=db),
        "workers": list_worker_heartbeats(session=db),
    }
    return render(request, "admin/system.html", principal, context)
