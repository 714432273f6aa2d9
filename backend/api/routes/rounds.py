"""Rounds over REST (admins): presets, create and launch, read, cancel, retry, close collection,
and the report across rounds as JSON and CSV (docs/rounds.md).

State changes commit first; the jobs they submitted are published afterwards (a lost message is
re-published by the reaper, docs/design/reliability.md B3).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from backend.api.routes.jobs import job_read, publish
from backend.api.schemas.common import ERROR_RESPONSES, ErrorRead
from backend.api.schemas.rounds import (
    CollectionProgress,
    RoundCreate,
    RoundModels,
    RoundRead,
    RoundSummary,
)
from backend.config import Settings
from backend.db.models import Round, TrainingJob
from backend.domain.enums import TokenScope, UserRole
from backend.domain.errors import NotFound
from backend.edge.deps import DbDep, Principal, SettingsDep, require
from backend.services.access import visible_project
from backend.services.jobs_submit import get_job
from backend.services.rounds import lifecycle
from backend.services.rounds.reports import report_csv, round_report
from backend.services.rounds.settings import (
    Algorithm,
    InvalidRoundSettings,
    round_presets,
    validate_round_settings,
)

router = APIRouter(tags=["rounds"], responses=ERROR_RESPONSES)
Admin = Annotated[Principal, Depends(require(UserRole.admin, scope=TokenScope.admin))]
AdminReader = Annotated[Principal, Depends(require(UserRole.admin, scope=TokenScope.read))]
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorRead, "description": "settings refused: `errors` maps each field to its message"}
}


def _publish(db: Session, job_ids: list[int]) -> None:
    for job_id in job_ids:
        try:
            job = get_job(session=db, job_id=job_id)
        except NotFound:
            continue  # as before: a job that is gone has nothing to publish
        publish(db, job)


def _stage(db: Session, round_: Round, jobs: list[TrainingJob]) -> str:
    state = round_.state.value
    if round_.state.value == "collecting":
        decided, total = lifecycle.decided_pairs(db, round_.id)
        return f"collecting: {decided} of {total} pairs decided"
    ids = set(lifecycle.stage_job_ids(round_, round_.state))
    running = [j for j in jobs if j.id in ids]
    if not running:
        return state if round_.error is None else f"{state}: {round_.error}"
    parts = ", ".join(f"{j.kind.value} {j.state.value} {round(j.progress * 100)}%" for j in running)
    return f"{state}: {parts}"


def round_read(db: Session, round_: Round, settings: Settings) -> RoundRead:
    jobs = lifecycle.round_jobs(session=db, round_id=round_.id)
    decided, total = lifecycle.decided_pairs(db, round_.id)
    config = {k: v for k, v in (round_.config or {}).items() if k != lifecycle.RUN}
    return RoundRead(
        id=round_.id,
        project_id=round_.project_id,
        number=round_.number,
        state=round_.state,
        stage=_stage(db, round_, jobs),
        settings=config,
        error=round_.error,
        failed_stage=round_.failed_stage,
        launched_by_id=round_.launched_by_id,
        models=RoundModels(
            base_policy_id=round_.base_policy_id,
            reward_model_id=round_.reward_model_id,
            cost_model_id=round_.cost_model_id,
            policy_id=round_.policy_id,
            snapshot_id=round_.snapshot_id,
        ),
        collection=CollectionProgress(
            decided=decided, total=total, target=config.get("collection_target_pairs")
        ),
        jobs=[job_read(job, settings) for job in jobs],
        report=round_.report or {},
        created_at=round_.created_at,
        started_at=round_.started_at,
        finished_at=round_.finished_at,
        collection_closed_at=round_.collection_closed_at,
        url=f"{settings.base_url.rstrip('/')}/admin/rounds/{round_.id}",
    )


def _visible_round(db: Session, principal: Principal, round_id: int) -> Round:
    round_ = lifecycle.get_round(session=db, round_id=round_id)
    visible_project(db, user=principal.user, project_id=round_.project_id)
    return round_


def _invalid(exc: InvalidRoundSettings) -> JSONResponse:
    body = {"detail": exc.detail, "code": exc.code, "errors": exc.field_errors}
    return JSONResponse(status_code=422, content=body)


@router.get("/projects/{project_id}/rounds/presets", summary="Pre-filled settings of the next round")
def read_presets(
    project_id: int, db: DbDep, principal: AdminReader, algorithm: Algorithm = "ppo-lag"
) -> dict[str, Any]:
    """`algorithm` picks the policy stage's options (each stage refuses the others')."""
    visible_project(db, user=principal.user, project_id=project_id)
    return round_presets(session=db, project_id=project_id, algorithm=algorithm)


@router.get(
    "/projects/{project_id}/rounds", response_model=list[RoundSummary], summary="The project's rounds"
)
def read_rounds(project_id: int, db: DbDep, principal: AdminReader) -> list[RoundSummary]:
    visible_project(db, user=principal.user, project_id=project_id)
    rounds = lifecycle.list_rounds(session=db, project_id=project_id)
    return [
        RoundSummary(
            id=r.id,
            project_id=r.project_id,
            number=r.number,
            state=r.state,
            error=r.error,
            failed_stage=r.failed_stage,
            policy_id=r.policy_id,
            created_at=r.created_at,
            finished_at=r.finished_at,
        )
        for r in rounds
    ]


@router.post(
    "/projects/{project_id}/rounds",
    response_model=RoundRead,
    status_code=status.HTTP_201_CREATED,
    responses=INVALID,
    summary="Create a round (and launch it unless launch=false)",
)
def post_round(
    project_id: int, body: RoundCreate, db: DbDep, settings: SettingsDep, principal: Admin
) -> RoundRead | JSONResponse:
    visible_project(db, user=principal.user, project_id=project_id)
    try:
        checked = validate_round_settings(session=db, project_id=project_id, data=body.settings)
    except InvalidRoundSettings as exc:
        return _invalid(exc)
    round_ = lifecycle.create_round(
        session=db, caller=principal.caller, project_id=project_id, settings=checked
    )
    if body.launch:
        _publish(db, lifecycle.launch_round(session=db, round_id=round_.id))
    db.expire_all()
    return round_read(db, lifecycle.get_round(session=db, round_id=round_.id), settings)


@router.get("/rounds/{round_id}", response_model=RoundRead, summary="A round: state, stage, jobs, models")
def read_round(round_id: int, db: DbDep, settings: SettingsDep, principal: AdminReader) -> RoundRead:
    return round_read(db, _visible_round(db, principal, round_id), settings)


def _after(db: Session, round_id: int, settings: Settings, job_ids: list[int]) -> RoundRead:
    _publish(db, job_ids)
    db.expire_all()
    return round_read(db, lifecycle.get_round(session=db, round_id=round_id), settings)


@router.post(
    "/rounds/{round_id}/launch",
    response_model=RoundRead,
    responses={**INVALID, 409: {"model": ErrorRead, "description": "the round is not a draft"}},
    summary="Launch a draft round",
)
def post_launch(
    round_id: int, db: DbDep, settings: SettingsDep, principal: Admin
) -> RoundRead | JSONResponse:
    _visible_round(db, principal, round_id)
    try:
        job_ids = lifecycle.launch_round(session=db, round_id=round_id)
    except InvalidRoundSettings as exc:
        db.rollback()
        return _invalid(exc)
    return _after(db, round_id, settings, job_ids)


@router.post(
    "/rounds/{round_id}/cancel",
    response_model=RoundRead,
    responses={409: {"model": ErrorRead, "description": "the round already ended"}},
    summary="Cancel a round and stop its running job",
)
def post_cancel(round_id: int, db: DbDep, settings: SettingsDep, principal: Admin) -> RoundRead:
    _visible_round(db, principal, round_id)
    lifecycle.cancel_round(session=db, round_id=round_id)
    return _after(db, round_id, settings, [])


@router.post(
    "/rounds/{round_id}/retry",
    response_model=RoundRead,
    responses={409: {"model": ErrorRead, "description": "the round has not failed"}},
    summary="Re-run the failed stage (what succeeded is kept)",
)
def post_retry(round_id: int, db: DbDep, settings: SettingsDep, principal: Admin) -> RoundRead:
    _visible_round(db, principal, round_id)
    return _after(db, round_id, settings, lifecycle.retry_round(session=db, round_id=round_id))


@router.post(
    "/rounds/{round_id}/close-collection",
    response_model=RoundRead,
    responses={
        409: {"model": ErrorRead, "description": "the round is not collecting, or nothing is decided"}
    },
    summary="End annotation now and train on the data so far",
)
def post_close(round_id: int, db: DbDep, settings: SettingsDep, principal: Admin) -> RoundRead:
    _visible_round(db, principal, round_id)
    return _after(db, round_id, settings, lifecycle.close_collection(session=db, round_id=round_id))


@router.get("/projects/{project_id}/rounds/report", summary="One row per round (JSON)")
def read_report(project_id: int, db: DbDep, principal: AdminReader) -> list[dict[str, Any]]:
    visible_project(db, user=principal.user, project_id=project_id)
    return round_report(session=db, project_id=project_id)


@router.get(
    "/projects/{project_id}/rounds/report.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
    summary="One row per round (CSV)",
)
def read_report_csv(project_id: int, db: DbDep, principal: AdminReader) -> Response:
    visible_project(db, user=principal.user, project_id=project_id)
    body = report_csv(round_report(session=db, project_id=project_id))
    headers = {"Content-Disposition": f'attachment; filename="rounds-project-{project_id}.csv"'}
    return Response(content=body, media_type="text/csv", headers=headers)
