"""Bookkeeping shared by the round state machine's steps (docs/rounds.md): the round's run record
in its config, the row lock, the conditional state move, and submitting a stage's jobs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db.models import Round
from backend.domain.caller import Caller, CallerRef
from backend.domain.enums import JobState, RoundState, UserRole
from backend.domain.errors import NotFound
from backend.domain.round_states import can_move
from backend.services.jobs_submit import submit_job
from backend.services.rounds import stages
from backend.services.rounds.settings import RoundSettings

RUN = "_run"  # round.config key of the bookkeeping: prompt files and each stage's job ids
ACTIVE_JOB_STATES = (JobState.queued, JobState.running)
MAX_STEPS = 6  # one advance may pass several stages whose jobs had already succeeded


def settings_of(round_: Round) -> RoundSettings:
    return RoundSettings.model_validate({k: v for k, v in (round_.config or {}).items() if k != RUN})


def run_of(round_: Round) -> dict[str, Any]:
    return dict((round_.config or {}).get(RUN) or {})


def set_run(round_: Round, **changes: Any) -> None:
    round_.config = {**(round_.config or {}), RUN: {**run_of(round_), **changes}}


def stage_job_ids(round_: Round, stage: RoundState) -> list[int]:
    return [int(i) for i in run_of(round_).get("jobs", {}).get(stage.value, [])]


def lock_round(session: Session, round_id: int) -> Round:
    round_ = session.scalar(
        select(Round).where(Round.id == round_id).with_for_update().execution_options(populate_existing=True)
    )
    if round_ is None:
        raise NotFound(f"round {round_id} not found")
    return round_


class LostRace(Exception):
    """Another step moved the round first: this step's writes are rolled back."""


def move_state(
    session: Session, round_: Round, expected: RoundState, target: RoundState, **values: Any
) -> None:
    """The conditional transition. Raises LostRace when the round is no longer `expected`."""
    assert can_move(expected, target), f"{expected} -> {target}"
    session.flush()
    result = session.execute(
        update(Round).where(Round.id == round_.id, Round.state == expected).values(state=target, **values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise LostRace(f"round {round_.id} is no longer {expected.value}")
    session.refresh(round_)


def _caller(round_: Round) -> Caller | None:
    return None if round_.launched_by_id is None else CallerRef(round_.launched_by_id, UserRole.admin)


def submit_stage(
    session: Session, round_: Round, stage: RoundState, specs: list[stages.JobSpec]
) -> list[int]:
    """Submit the stage's jobs in the round's transaction; record them; the new ones' ids."""
    queue = get_settings().job_queue
    ids, created = [], []
    for spec in specs:
        result = submit_job(
            session=session,
            caller=_caller(round_),
            kind=spec.kind,
            config=spec.config,
            inputs=spec.inputs,
            project_id=round_.project_id,
            round_id=round_.id,
            queue=queue,
            commit=False,
        )
        ids.append(result.job.id)
        if result.created:
            created.append(result.job.id)
    jobs = {**run_of(round_).get("jobs", {}), stage.value: ids}
    set_run(round_, jobs=jobs)
    return created
