"""Training jobs over REST (admins): submit, list, read, cancel, retry, log tail.

Submission commits the job, then publishes its wake-up message; if publishing fails the job stays
queued and the reaper publishes it again, so the answer is still the job (docs/design/reliability.md B3).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy.orm import Session

from backend.api.schemas.common import ERROR_RESPONSES, ErrorRead
from backend.api.schemas.jobs import JobLog, JobRead, JobSubmit
from backend.config import Settings
from backend.db.models import TrainingJob
from backend.domain import task_names
from backend.domain.enums import JobKind, JobState, TokenScope, UserRole
from backend.domain.errors import NotFound
from backend.edge.deps import DbDep, Principal, SettingsDep, require
from backend.services.access import can_see_project, visible_project
from backend.services.jobs_submit import (
    cancel_job,
    get_job,
    list_jobs,
    mark_published,
    retry_job,
    submit_job,
)
from backend.services.storage import resolve_artifact

logger = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"], responses=ERROR_RESPONSES)
Admin = Annotated[Principal, Depends(require(UserRole.admin, scope=TokenScope.admin))]
AdminReader = Annotated[Principal, Depends(require(UserRole.admin, scope=TokenScope.read))]
LOG_LINES = 200


def job_read(job: TrainingJob, settings: Settings) -> JobRead:
    return JobRead.model_validate(job).model_copy(
        update={"url": f"{settings.base_url.rstrip('/')}/admin/jobs/{job.id}"}
    )


def publish(db: Session, job: TrainingJob) -> None:
    """After the commit. A failure leaves the job queued for the reaper to publish."""
    from backend.queue import send

    try:
        send(task_names.RUN_TRAINING_JOB, job.id, queue=job.queue)
    except Exception:
        logger.exception("could not publish job %s; the reaper will", job.id)
        return
    mark_published(session=db, job_id=job.id)


def visible_job(db: Session, principal: Principal, job_id: int) -> TrainingJob:
    job = get_job(session=db, job_id=job_id)
    if job.project_id is not None and not can_see_project(db, user=principal.user, project_id=job.project_id):
        raise NotFound(f"training job {job_id} not found")
    return job


@router.post(
    "/jobs",
    response_model=JobRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": JobRead, "description": "an identical job already succeeded: that job"},
        422: {"model": ErrorRead, "description": "the stage refuses the config (the CLI's message)"},
    },
    summary="Submit a training job (any stage)",
)
def post_job(
    body: JobSubmit, response: Response, db: DbDep, settings: SettingsDep, principal: Admin
) -> JobRead:
    if body.project_id is not None:
        visible_project(db, user=principal.user, project_id=body.project_id)
    result = submit_job(
        session=db,
        caller=principal.caller,
        kind=body.kind,
        config=body.config,
        inputs=body.inputs,
        project_id=body.project_id,
        round_id=body.round_id,
        gpus=body.gpus,
        nodes=body.nodes,
        max_attempts=body.max_attempts,
        queue=settings.job_queue,
    )
    if result.created:
        publish(db, result.job)
    else:
        response.status_code = status.HTTP_200_OK
    return job_read(result.job, settings)


@router.get("/jobs", response_model=list[JobRead], summary="Training jobs, newest first")
def read_jobs(
    db: DbDep,
    settings: SettingsDep,
    principal: AdminReader,
    project_id: int | None = None,
    state: JobState | None = None,
    kind: JobKind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JobRead]:
    if project_id is not None:
        visible_project(db, user=principal.user, project_id=project_id)
    jobs = list_jobs(session=db, project_id=project_id, state=state, kind=kind, limit=limit)
    return [job_read(job, settings) for job in jobs]


@router.get("/jobs/{job_id}", response_model=JobRead, summary="One training job")
def read_job(job_id: int, db: DbDep, settings: SettingsDep, principal: AdminReader) -> JobRead:
    return job_read(visible_job(db, principal, job_id), settings)


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobRead,
    responses={409: {"model": ErrorRead, "description": "the job already finished"}},
    summary="Cancel a queued job at once, or stop a running one",
)
def post_cancel(job_id: int, db: DbDep, settings: SettingsDep, principal: Admin) -> JobRead:
    visible_job(db, principal, job_id)
    return job_read(cancel_job(session=db, job_id=job_id), settings)


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobRead,
    responses={409: {"model": ErrorRead, "description": "the job is not failed or cancelled"}},
    summary="Queue a failed or cancelled job again (it resumes from its last checkpoint)",
)
def post_retry(job_id: int, db: DbDep, settings: SettingsDep, principal: Admin) -> JobRead:
    visible_job(db, principal, job_id)
    job = retry_job(session=db, job_id=job_id)
    publish(db, job)
    return job_read(job, settings)


@router.get("/jobs/{job_id}/log", response_model=JobLog, summary="The tail of the stage's stderr")
def read_log(
    job_id: int,
    db: DbDep,
    settings: SettingsDep,
    principal: AdminReader,
    lines: Annotated[int, Query(ge=1, le=5000)] = LOG_LINES,
) -> JobLog:
    job = visible_job(db, principal, job_id)
    text = job.log_tail or ""
    if job.output_key:
        try:
            path = resolve_artifact(settings.artifacts_dir, job.output_key, "stderr.log")
        except NotFound:
            path = None
        if path is not None and path.is_file():
            with path.open("rb") as handle:
                handle.seek(max(0, path.stat().st_size - 256 * 1024))
                text = handle.read().decode("utf-8", errors="replace")
    return JobLog(job_id=job.id, state=job.state, log_tail="\n".join(text.splitlines()[-lines:]))
