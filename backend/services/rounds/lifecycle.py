"""The round state machine in Postgres (docs/rounds.md).

Every step locks the round row and moves its state with a conditional UPDATE (WHERE state =
expected) in the same transaction as the jobs it submits, so a replayed or concurrent step finds
the state moved and does nothing. Jobs are submitted through submit_job, whose inputs hash returns
an identical job that already succeeded instead of running it again: a retried round re-runs only
what failed. Functions return the ids of jobs to publish after the commit.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.models import Round, TrainingJob
from backend.domain.caller import Caller
from backend.domain.enums import JobState, RoundState
from backend.domain.errors import Conflict, DomainError, NotFound
from backend.domain.round_states import NEXT_STATE
from backend.services.jobs_submit import cancel_job, retry_job
from backend.services.rounds import generation, stages
from backend.services.rounds.bookkeeping import (
    ACTIVE_JOB_STATES,
    MAX_STEPS,
    RUN,
    LostRace,
    lock_round,
    move_state,
    run_of,
    set_run,
    settings_of,
    stage_job_ids,
    submit_stage,
)
from backend.services.rounds.settings import RoundSettings, is_toyworld
from backend.services.rounds.transitions import STEPS, decided_pairs, jobs_by_id

# Read by the REST routes and the report alongside the public steps below.
__all__ = [
    "RUN",
    "active_round_ids",
    "advance_round",
    "cancel_round",
    "close_collection",
    "create_round",
    "decided_pairs",
    "get_round",
    "launch_round",
    "list_rounds",
    "on_job_finished",
    "retry_round",
    "round_jobs",
    "run_of",
    "settings_of",
    "stage_job_ids",
]


def create_round(*, session: Session, caller: Caller, project_id: int, settings: RoundSettings) -> Round:
    """A draft round with the next number of the project."""
    for _ in range(3):
        number = (
            session.scalar(select(func.max(Round.number)).where(Round.project_id == project_id)) or 0
        ) + 1
        round_ = Round(
            project_id=project_id,
            number=number,
            state=RoundState.draft,
            config=settings.model_dump(),
            base_policy_id=settings.base_policy_id,
            launched_by_id=caller.id,
        )
        session.add(round_)
        try:
            session.commit()
        except IntegrityError:  # another round took the number at the same moment
            session.rollback()
            continue
        return round_
    raise Conflict("another round is being created in this project; try again")


def _supervised_base(session: Session, round_: Round) -> int:
    """The reward and cost models start from the project's first round's policy (the SFT model),
    as in the paper, not from the RL policies that followed it."""
    first = session.scalar(
        select(Round.base_policy_id)
        .where(Round.project_id == round_.project_id, Round.base_policy_id.is_not(None))
        .order_by(Round.number)
        .limit(1)
    )
    return int(first or round_.base_policy_id or 0)


def launch_round(*, session: Session, round_id: int) -> list[int]:
    """draft -> generating: choose the prompts, submit one generate job per response slot."""
    round_ = lock_round(session, round_id)
    if round_.state != RoundState.draft:
        raise Conflict(f"round {round_.number} is {round_.state.value}; only a draft round can be launched")
    from backend.services.rounds.settings import validate_round_settings

    settings = validate_round_settings(
        session=session, project_id=round_.project_id, data=settings_of(round_).model_dump()
    )
    files = generation.choose_prompts(
        session, artifacts_dir=get_settings().artifacts_dir, round_=round_, settings=settings
    )
    set_run(
        round_,
        prompts_key=files.train_key,
        heldout_key=files.heldout_key,
        prompt_count=files.train_count,
        heldout_count=files.heldout_count,
        supervised_base_id=_supervised_base(session, round_),
    )
    specs = stages.generate_specs(
        settings,
        policy_id=int(round_.base_policy_id or 0),
        prompts_key=files.train_key,
        toy=is_toyworld(session, round_.project_id),
    )
    created = submit_stage(session, round_, RoundState.generating, specs)
    try:
        move_state(session, round_, RoundState.draft, RoundState.generating, started_at=utcnow())
    except LostRace:
        session.rollback()
        raise Conflict(f"round {round_.number} was launched by someone else just now") from None
    session.commit()
    return created + advance_round(session=session, round_id=round_id)


def _step(session: Session, round_id: int) -> tuple[bool, list[int]]:
    """One stage step in its own transaction: (moved, ids to publish)."""
    round_ = lock_round(session, round_id)
    before = round_.state
    step = STEPS.get(before)
    if step is None:
        session.rollback()
        return False, []
    try:
        created = step(session, round_)
    except LostRace:  # another process moved it: nothing of this step is kept
        session.rollback()
        return False, []
    except (DomainError, OSError, ValueError, KeyError) as exc:
        session.rollback()
        message = exc.detail if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        round_ = lock_round(session, round_id)
        if round_.state == before:
            move_state(session, round_, before, RoundState.failed, failed_stage=before.value, error=message)
            session.commit()
        else:
            session.rollback()
        return False, []
    session.commit()
    return round_.state != before, created


def advance_round(*, session: Session, round_id: int) -> list[int]:
    """Move the round as far as its jobs and annotations allow. Idempotent: a replay, or a second
    process doing the same, finds the state already moved and submits nothing."""
    published: list[int] = []
    for _ in range(MAX_STEPS):
        moved, created = _step(session, round_id)
        published += created
        if not moved:
            break
    return published


def on_job_finished(*, session: Session, job_id: int) -> list[int]:
    """The worker's hook, after a job of a round reached a final state."""
    round_id = session.scalar(select(TrainingJob.round_id).where(TrainingJob.id == job_id))
    session.rollback()
    if round_id is None:
        return []
    return advance_round(session=session, round_id=round_id)


def close_collection(*, session: Session, round_id: int) -> list[int]:
    round_ = lock_round(session, round_id)
    if round_.state != RoundState.collecting:
        raise Conflict(f"round {round_.number} is {round_.state.value}; only a collecting round can close")
    if decided_pairs(session, round_id)[0] == 0:
        raise Conflict("no pair of this round is fully annotated yet; there is nothing to train on")
    round_.collection_closed_at = utcnow()
    session.commit()
    return advance_round(session=session, round_id=round_id)


def cancel_round(*, session: Session, round_id: int) -> Round:
    """Cancel the round and its queued or running jobs (a running one stops at its next heartbeat)."""
    round_ = lock_round(session, round_id)
    if round_.state in (RoundState.completed, RoundState.cancelled):
        raise Conflict(f"round {round_.number} is {round_.state.value} and cannot be cancelled")
    move_state(session, round_, round_.state, RoundState.cancelled, finished_at=utcnow())
    for job in session.scalars(
        select(TrainingJob).where(TrainingJob.round_id == round_id, TrainingJob.state.in_(ACTIVE_JOB_STATES))
    ):
        cancel_job(session=session, job_id=job.id, commit=False)
    session.commit()
    return round_


def retry_round(*, session: Session, round_id: int) -> list[int]:
    """Back into the stage that failed; only its failed or cancelled jobs run again (each resumes
    from its last checkpoint), what succeeded is kept."""
    round_ = lock_round(session, round_id)
    if round_.state != RoundState.failed or round_.failed_stage is None:
        raise Conflict(f"round {round_.number} is {round_.state.value}; only a failed round can be retried")
    stage = RoundState(round_.failed_stage)
    retried = []
    for job in jobs_by_id(session, stage_job_ids(round_, stage)):
        if job.state in (JobState.failed, JobState.cancelled):
            retry_job(session=session, job_id=job.id, commit=False)
            retried.append(job.id)
    move_state(session, round_, RoundState.failed, stage, failed_stage=None, error=None)
    session.commit()
    return retried + advance_round(session=session, round_id=round_id)


def get_round(*, session: Session, round_id: int) -> Round:
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFound(f"round {round_id} not found")
    return round_


def list_rounds(*, session: Session, project_id: int) -> list[Round]:
    return list(session.scalars(select(Round).where(Round.project_id == project_id).order_by(Round.number)))


def round_jobs(*, session: Session, round_id: int) -> list[TrainingJob]:
    """The round's jobs, including identical jobs of earlier rounds it reused."""
    round_ = get_round(session=session, round_id=round_id)
    recorded = [i for stage in run_of(round_).get("jobs", {}).values() for i in stage]
    query = select(TrainingJob).where((TrainingJob.round_id == round_id) | TrainingJob.id.in_(recorded))
    return list(session.scalars(query.order_by(TrainingJob.id)))


def active_round_ids(*, session: Session) -> list[int]:
    """Rounds the beat task looks at: every round a stage is running for."""
    states = [s for s in NEXT_STATE if s != RoundState.draft]
    return list(session.scalars(select(Round.id).where(Round.state.in_(states)).order_by(Round.id)))
