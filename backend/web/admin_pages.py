"""Admin pages: the system overview (services, workers, what the database holds)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from backend.api.deps import DbDep, Principal, SettingsDep, require
from backend.db.models import Annotation, Comparison, Project, Prompt, TrainingJob, User, WorkerHeartbeat
from backend.domain.enums import UserRole
from backend.services.health import check_broker, check_database

router = APIRouter(include_in_schema=False)


@router.get("/admin/system", response_class=HTMLResponse)
async def system_overview(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(require(UserRole.admin))],
) -> HTMLResponse:
    database = await run_in_threadpool(check_database, request.app.state.engine)
    broker = await run_in_threadpool(check_broker, settings)
    counts = {
        label: db.scalar(select(func.count()).select_from(model)) or 0
        for label, model in (
            ("Users", User),
            ("Projects", Project),
            ("Prompts", Prompt),
            ("Comparisons", Comparison),
            ("Annotations", Annotation),
            ("Training jobs", TrainingJob),
        )
    }
    workers = db.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_seen_at.desc())).all()
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        "admin/system.html",
        {
            "user": principal.user,
            "csrf": principal.session_record.csrf_token if principal.session_record else "",
            "database": database,
            "broker": broker,
            "counts": counts,
            "workers": workers,
        },
    )
    return response
