"""Admin pages for rounds: the rounds of a project (and of all projects), one round with its stage
timeline and live job progress, its launch / cancel / retry / close-collection buttons, and the
report across rounds with plots. Every decision is the rounds services'; these pages only show
their state and call them (docs/rounds.md)."""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from backend import queue
from backend.db.models import ModelArtifact, Round, TrainingJob
from backend.domain import task_names
from backend.domain.enums import JobState, RoundState, UserRole
from backend.domain.errors import DomainError
from backend.domain.round_states import STAGE_ORDER
from backend.edge.deps import DbDep, Principal, require
from backend.services.access import visible_project
from backend.services.jobs_submit import get_job, mark_published
from backend.services.models import get_model
from backend.services.project_lookup import get_project, list_visible_projects
from backend.services.rounds.lifecycle import (
    cancel_round,
    close_collection,
    decided_pairs,
    get_round,
    launch_round,
    list_rounds,
    retry_round,
    round_jobs,
    run_of,
    settings_of,
    stage_job_ids,
)
from backend.services.rounds.reports import round_report
from backend.web.job_pages import CHART_PAGE_CSP
from backend.web.pages import render, see_other

router = APIRouter(include_in_schema=False)
Admin = Annotated[Principal, Depends(require(UserRole.admin))]
logger = logging.getLogger(__name__)
TIMELINE = (RoundState.draft, *STAGE_ORDER, RoundState.completed)
STAGE_NAMES = {
    RoundState.draft: "Draft",
    RoundState.generating: "Generate",
    RoundState.collecting: "Collect",
    RoundState.training: "Reward & cost",
    RoundState.policy: "Policy",
    RoundState.evaluating: "Evaluate",
    RoundState.completed: "Done",
}
FINAL_JOB_STATES = (JobState.succeeded, JobState.failed, JobState.cancelled)


def publish_jobs(db: Session, job_ids: list[int]) -> None:
    """After the commit, as the REST route does. A failed publish leaves the job queued in
    Postgres, where the reaper publishes it again."""
    for job_id in job_ids:
        try:
            job = get_job(session=db, job_id=job_id)
            queue.send(task_names.RUN_TRAINING_JOB, job.id, queue=job.queue)
            mark_published(session=db, job_id=job.id)
        except Exception:
            db.rollback()
            logger.warning(
                "job %s: publishing its message failed; the reaper will retry", job_id, exc_info=True
            )


def visible_round(db: Session, principal: Principal, round_id: int) -> Round:
    round_ = get_round(session=db, round_id=round_id)
    visible_project(db, user=principal.user, project_id=round_.project_id)
    return round_


def timeline(round_: Round) -> list[dict[str, str]]:
    """Each stage as done / current / failed / pending, for the stage strip."""
    state = round_.state
    reached = RoundState(round_.failed_stage) if state == RoundState.failed and round_.failed_stage else state
    index = TIMELINE.index(reached) if reached in TIMELINE else -1
    steps = []
    for i, stage in enumerate(TIMELINE):
        if state == RoundState.completed or i < index:
            status = "done"
        elif i == index:
            status = {RoundState.failed: "failed", RoundState.cancelled: "pending"}.get(state, "current")
        else:
            status = "pending"
        steps.append({"stage": stage.value, "name": STAGE_NAMES[stage], "status": status})
    return steps


def _job_stages(round_: Round) -> dict[int, str]:
    return {job_id: STAGE_NAMES[stage] for stage in STAGE_ORDER for job_id in stage_job_ids(round_, stage)}


def _models(db: Session, round_: Round) -> list[tuple[str, ModelArtifact]]:
    roles = (
        ("base policy", round_.base_policy_id),
        ("reward model", round_.reward_model_id),
        ("cost model", round_.cost_model_id),
        ("new policy", round_.policy_id),
    )
    # The ids are foreign keys (SET NULL when a model goes), so a set one always finds its model.
    return [(role, get_model(session=db, model_id=model_id)) for role, model_id in roles if model_id]


def round_context(db: Session, round_: Round) -> dict[str, Any]:
    jobs: list[TrainingJob] = round_jobs(session=db, round_id=round_.id)
    decided, total = decided_pairs(db, round_.id)
    state = round_.state
    return {
        "round": round_,
        "project": get_project(session=db, project_id=round_.project_id),
        "timeline": timeline(round_),
        "jobs": jobs,
        "job_stages": _job_stages(round_),
        "models": _models(db, round_),
        "settings": settings_of(round_).model_dump(),
        "run": run_of(round_),
        "decided": decided,
        "total_pairs": total,
        "final": state in (RoundState.completed, RoundState.cancelled, RoundState.failed),
        "can_launch": state == RoundState.draft,
        "can_close": state == RoundState.collecting,
        "can_cancel": state not in (RoundState.completed, RoundState.cancelled),
        "can_retry": state == RoundState.failed,
    }


def round_page_response(
    request: Request,
    db: Session,
    principal: Principal,
    round_id: int,
    *,
    errors: list[str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    round_ = visible_round(db, principal, round_id)
    context = round_context(db, round_) | {"errors": errors or []}
    return render(request, "rounds/detail.html", principal, context, status=status)


@router.get("/admin/rounds", response_class=HTMLResponse)
def all_rounds(request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    projects = list_visible_projects(session=db, user=principal.user)  # an admin's: every project, by name
    rows = [(p, list_rounds(session=db, project_id=p.id)) for p in projects]
    return render(request, "rounds/index.html", principal, {"rows": rows})


@router.get("/admin/projects/{project_id}/rounds", response_class=HTMLResponse)
def project_rounds(project_id: int, request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    project = visible_project(db, user=principal.user, project_id=project_id)
    rounds = list_rounds(session=db, project_id=project.id)
    return render(request, "rounds/list.html", principal, {"project": project, "rounds": rounds})


@router.get("/admin/rounds/{round_id}", response_class=HTMLResponse)
def round_page(round_id: int, request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    return round_page_response(request, db, principal, round_id)


def _act(request: Request, db: Session, principal: Principal, round_id: int, action: str) -> Response:
    visible_round(db, principal, round_id)
    try:
        if action == "launch":
            job_ids = launch_round(session=db, round_id=round_id)
        elif action == "close":
            job_ids = close_collection(session=db, round_id=round_id)
        elif action == "retry":
            job_ids = retry_round(session=db, round_id=round_id)
        else:
            cancel_round(session=db, round_id=round_id)
            job_ids = []
    except DomainError as error:
        # Shown on the round page itself: the services' message says exactly why (e.g. no pair is
        # fully annotated yet), which a fixed notice could not.
        db.rollback()
        return round_page_response(
            request, db, principal, round_id, errors=[error.detail], status=error.status_code
        )
    publish_jobs(db, job_ids)
    notice = {"launch": "round_launched", "close": "collection_closed", "retry": "round_retried"}
    return see_other(f"/admin/rounds/{round_id}", notice.get(action, "round_cancelled"))


@router.post("/admin/rounds/{round_id}/launch")
def launch_page(round_id: int, request: Request, db: DbDep, principal: Admin) -> Response:
    return _act(request, db, principal, round_id, "launch")


@router.post("/admin/rounds/{round_id}/cancel")
def cancel_page(round_id: int, request: Request, db: DbDep, principal: Admin) -> Response:
    return _act(request, db, principal, round_id, "cancel")


@router.post("/admin/rounds/{round_id}/retry")
def retry_page(round_id: int, request: Request, db: DbDep, principal: Admin) -> Response:
    return _act(request, db, principal, round_id, "retry")


@router.post("/admin/rounds/{round_id}/close-collection")
def close_page(round_id: int, request: Request, db: DbDep, principal: Admin) -> Response:
    return _act(request, db, principal, round_id, "close")


def finite(value: Any) -> Any:
    """The report with NaN and infinities as None: a diverged run can log them, and the JSON the
    charts parse has no way to spell them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


@router.get("/admin/projects/{project_id}/rounds/report", response_class=HTMLResponse)
def report_page(project_id: int, request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    project = visible_project(db, user=principal.user, project_id=project_id)
    rows = [finite(row) for row in round_report(session=db, project_id=project.id)]
    response = render(request, "rounds/report.html", principal, {"project": project, "rows": rows})
    response.headers["Content-Security-Policy"] = CHART_PAGE_CSP
    return response
