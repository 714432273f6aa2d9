"""A job's metrics for the live charts: GET /jobs/{id}/metrics?after_step=N (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backend.api.schemas.common import ERROR_RESPONSES
from backend.api.schemas.models import MetricsRead
from backend.domain.enums import TokenScope, UserRole
from backend.edge.deps import DbDep, Principal, require
from backend.services.job_metrics import list_metrics
from backend.services.jobs import get_job

router = APIRouter(tags=["jobs"], responses=ERROR_RESPONSES)
AdminReader = Annotated[Principal, Depends(require(UserRole.admin, scope=TokenScope.read))]


@router.get(
    "/jobs/{job_id}/metrics",
    response_model=MetricsRead,
    summary="A job's metric points after a step, per metric (poll with after_step=last_step)",
)
def read_job_metrics(
    job_id: int,
    db: DbDep,
    principal: AdminReader,
    after_step: Annotated[int | None, Query(ge=-1, description="only steps after this one")] = None,
    name: Annotated[list[str] | None, Query(description="only these metrics (repeatable)")] = None,
) -> MetricsRead:
    job = get_job(session=db, job_id=job_id)
    result = list_metrics(session=db, job_id=job.id, after_step=after_step, names=name)
    return MetricsRead(
        job_id=job.id,
        state=job.state,
        progress=job.progress,
        current_step=job.current_step,
        total_steps=job.total_steps,
        eta_s=job.eta_s,
        series=result.series,
        last_step=result.last_step,
    )
