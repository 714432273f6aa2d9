"""The round state machine in Postgres (docs/rounds.md).

Every step locks the round row and moves its state with a conditional UPDATE (WHERE state =
expected) in the same transaction as the jobs it submits, so a replayed or concurrent step finds
the state moved and does nothing. Jobs are submitted through submit_job, whose inputs hash returns
an identical job that already succeeded instead of running it again: a retried round re-runs only
what failed. Functions return the ids of jobs to publish after the commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.models import Comparison, ModelArtifact, Project, Round, TrainingJob, User
from backend.domain.caller import Caller, CallerRef
from backend.domain.enums import ComparisonStatus, JobState, RoundState, UserRole
from backend.domain.errors import Conflict, DomainError, NotFound
from backend.domain.round_states import NEXT_STATE, can_move
from backend.services.jobs_submit import cancel_job, retry_job, submit_job
from backend.services.rounds import generation, stages
from backend.services.rounds.settings import RoundSettings, is_toyworld
from backend.services.rounds.splits import split_snapshot

RUN = "_run"  # round.config key of the bookkeeping: prompt files and each stage's job ids
ACTIVE_JOB_STATES = (JobState.queued, JobState.running)
MAX_STEPS = 6  # one advance may pass several stages whose jobs had already succeeded


def settings_of(round_: Round) -> RoundSettings:
    return RoundSettings.model_validate({k: v for k, v in (round_.config or {}).items() if k != RUN})


def run_of(round_: Round) -> dict[str, Any]:
    return dict((round_.config or {}).get(RUN) or {})


def _set_run(round_: Round, **changes: Any) -> None:
    round_.config = {**(round_.config or {}), RUN: {**run_of(round_), **changes}}


def stage_job_ids(round_: Round, stage: RoundState) -> list[int]:
    return [int(i) for i in run_of(round_).get("jobs", {}).get(stage.value, [])]


def _lock(session: Session, round_id: int) -> Round:
    round_ = session.scalar(
        select(Round).where(Round.id == round_id).with_for_update().execution_options(populate_existing=True)
    )
    if round_ is None:
        raise NotFound(f"round {round_id} not found")
    return round_


class LostRace(Exception):
    """Another step moved the round first: this step's writes are rolled back."""


def _move(session: Session, round_: Round, expected: RoundState, target: RoundState, **values: Any) -> None:
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


def _submit(session: Session, round_: Round, stage: RoundState, specs: list[stages.JobSpec]) -> list[int]:
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
    _set_run(round_, jobs=jobs)
    return created


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
    round_ = _lock(session, round_id)
    if round_.state != RoundState.draft:
        raise Conflict(f"round {round_.number} is {round_.state.value}; only a draft round can be launched")
    from backend.services.rounds.settings import validate_round_settings

    settings = validate_round_settings(
        session=session, project_id=round_.project_id, data=settings_of(round_).model_dump()
    )
    files = generation.choose_prompts(
        session, artifacts_dir=get_settings().artifacts_dir, round_=round_, settings=settings
    )
    _set_run(
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
    created = _submit(session, round_, RoundState.generating, specs)
    try:
        _move(session, round_, RoundState.draft, RoundState.generating, started_at=utcnow())
    except LostRace:
        session.rollback()
        raise Conflict(f"round {round_.number} was launched by someone else just now") from None
    session.commit()
    return created + advance_round(session=session, round_id=round_id)


def _jobs(session: Session, ids: list[int]) -> list[TrainingJob]:
    jobs = {j.id: j for j in session.scalars(select(TrainingJob).where(TrainingJob.id.in_(ids)))}
    return [jobs[i] for i in ids if i in jobs]


def _stage_outcome(jobs: list[TrainingJob]) -> str | None:
    """'failed: <why>' when a job of the stage ended without success, 'done', or None (running)."""
    for job in jobs:
        if job.state in (JobState.failed, JobState.cancelled):
            return f"failed: {job.kind.value} job {job.id} {job.state.value}: {job.error or ''}".rstrip(": ")
    if jobs and all(job.state == JobState.succeeded for job in jobs):
        return "done"
    return None


def _model_of(session: Session, job: TrainingJob) -> ModelArtifact:
    model = session.scalar(
        select(ModelArtifact)
        .where(ModelArtifact.training_job_id == job.id)
        .order_by(ModelArtifact.id)
        .limit(1)
    )
    if model is None:
        raise DomainError(f"{job.kind.value} job {job.id} succeeded but registered no model", code="no_model")
    return model


def decided_pairs(session: Session, round_id: int) -> tuple[int, int]:
    """(decided, total) comparisons of the round, gold left out: decided = every annotation asked."""
    row = session.execute(
        select(
            func.count().filter(Comparison.submitted_count >= Comparison.overlap_target),
            func.count(),
        ).where(
            Comparison.round_id == round_id,
            Comparison.is_gold.is_(False),
            Comparison.status != ComparisonStatus.retired,
        )
    ).one()
    return int(row[0]), int(row[1])


def _advance_generating(session: Session, round_: Round) -> list[int]:
    jobs = _jobs(session, stage_job_ids(round_, RoundState.generating))
    outcome = _stage_outcome(jobs)
    if outcome != "done":
        return _fail_if(session, round_, outcome)
    pairs = generation.ingest_generations(
        session,
        artifacts_dir=get_settings().artifacts_dir,
        round_=round_,
        jobs=jobs,
        settings=settings_of(round_),
    )
    if pairs == 0:
        raise DomainError("the policy gave the same answer every time: no pairs to compare", code="no_pairs")
    _set_run(round_, pairs=pairs)
    _move(session, round_, RoundState.generating, RoundState.collecting)
    return []


def _collection_over(session: Session, round_: Round) -> bool:
    if round_.collection_closed_at is not None:
        return True
    target = settings_of(round_).collection_target_pairs
    if target is None:
        return False
    decided, total = decided_pairs(session, round_.id)
    return decided > 0 and (decided >= target or decided >= total)


def _advance_collecting(session: Session, round_: Round) -> list[int]:
    if not _collection_over(session, round_):
        return []
    from backend.services.snapshots import create_snapshot

    project, actor = session.get(Project, round_.project_id), session.get(User, round_.launched_by_id or 0)
    if project is None or actor is None:
        raise DomainError("the round's project or launcher no longer exists", code="no_launcher")
    round_id = round_.id
    # The snapshot of every decided pair of the project so far (rounds 1..k and imports). It
    # commits, which ends the round's lock; the state is checked again under a fresh one.
    snapshot = create_snapshot(
        session=session, actor=actor, project=project, artifacts_dir=get_settings().artifacts_dir
    ).snapshot
    round_ = _lock(session, round_id)
    if round_.state != RoundState.collecting:
        return []
    if snapshot.row_count == 0:
        raise DomainError("no decided pair has a clear preference yet: nothing to train on", code="no_data")
    settings = settings_of(round_)
    split = split_snapshot(
        session,
        artifacts_dir=get_settings().artifacts_dir,
        snapshot=snapshot,
        fraction=settings.held_out_fraction,
    )
    _set_run(round_, train_snapshot_id=split.train_id, heldout_snapshot_id=split.heldout_id)
    specs = stages.model_specs(
        settings,
        base_model_id=int(run_of(round_)["supervised_base_id"]),
        snapshot_id=split.train_id,
        eval_snapshot_id=split.heldout_id,
    )
    created = _submit(session, round_, RoundState.training, specs)
    closed = round_.collection_closed_at or utcnow()
    _move(
        session,
        round_,
        RoundState.collecting,
        RoundState.training,
        snapshot_id=snapshot.id,
        collection_closed_at=closed,
    )
    return created


def _advance_training(session: Session, round_: Round) -> list[int]:
    jobs = _jobs(session, stage_job_ids(round_, RoundState.training))
    outcome = _stage_outcome(jobs)
    if outcome != "done":
        return _fail_if(session, round_, outcome)
    by_kind = {job.kind.value: _model_of(session, job) for job in jobs}
    reward, cost = by_kind["reward"], by_kind["cost"]
    spec = stages.policy_spec(
        settings_of(round_),
        base_policy_id=int(round_.base_policy_id or 0),
        reward_model_id=reward.id,
        cost_model_id=cost.id,
        prompts_key=str(run_of(round_)["prompts_key"]),
        snapshot_id=int(run_of(round_).get("train_snapshot_id") or round_.snapshot_id or 0),
        toy=is_toyworld(session, round_.project_id),
    )
    created = _submit(session, round_, RoundState.policy, [spec])
    _move(
        session,
        round_,
        RoundState.training,
        RoundState.policy,
        reward_model_id=reward.id,
        cost_model_id=cost.id,
    )
    return created


def _advance_policy(session: Session, round_: Round) -> list[int]:
    jobs = _jobs(session, stage_job_ids(round_, RoundState.policy))
    outcome = _stage_outcome(jobs)
    if outcome != "done":
        return _fail_if(session, round_, outcome)
    policy = _model_of(session, jobs[0])
    spec = stages.evaluate_spec(
        settings_of(round_),
        previous_policy_id=int(round_.base_policy_id or 0),
        policy_id=policy.id,
        reward_model_id=int(round_.reward_model_id or 0),
        cost_model_id=int(round_.cost_model_id or 0),
        prompts_key=str(run_of(round_)["heldout_key"]),
        toy=is_toyworld(session, round_.project_id),
    )
    created = _submit(session, round_, RoundState.evaluating, [spec])
    _move(session, round_, RoundState.policy, RoundState.evaluating, policy_id=policy.id)
    return created


def _advance_evaluating(session: Session, round_: Round) -> list[int]:
    jobs = _jobs(session, stage_job_ids(round_, RoundState.evaluating))
    outcome = _stage_outcome(jobs)
    if outcome != "done":
        return _fail_if(session, round_, outcome)
    from backend.services.rounds.reports import build_round_report

    report = {**build_round_report(session, round_), "state": RoundState.completed.value}
    _move(session, round_, RoundState.evaluating, RoundState.completed, report=report, finished_at=utcnow())
    return []


def _fail_if(session: Session, round_: Round, outcome: str | None) -> list[int]:
    if outcome is not None and outcome.startswith("failed: "):
        _move(
            session,
            round_,
            round_.state,
            RoundState.failed,
            failed_stage=round_.state.value,
            error=outcome.removeprefix("failed: "),
        )
    return []


STEPS = {
    RoundState.generating: _advance_generating,
    RoundState.collecting: _advance_collecting,
    RoundState.training: _advance_training,
    RoundState.policy: _advance_policy,
    RoundState.evaluating: _advance_evaluating,
}


def _step(session: Session, round_id: int) -> tuple[bool, list[int]]:
    """One stage step in its own transaction: (moved, ids to publish)."""
    round_ = _lock(session, round_id)
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
        round_ = _lock(session, round_id)
        if round_.state == before:
            _move(session, round_, before, RoundState.failed, failed_stage=before.value, error=message)
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
    round_ = _lock(session, round_id)
    if round_.state != RoundState.collecting:
        raise Conflict(f"round {round_.number} is {round_.state.value}; only a collecting round can close")
    if decided_pairs(session, round_id)[0] == 0:
        raise Conflict("no pair of this round is fully annotated yet; there is nothing to train on")
    round_.collection_closed_at = utcnow()
    session.commit()
    return advance_round(session=session, round_id=round_id)


def cancel_round(*, session: Session, round_id: int) -> Round:
    """Cancel the round and its queued or running jobs (a running one stops at its next heartbeat)."""
    round_ = _lock(session, round_id)
    if round_.state in (RoundState.completed, RoundState.cancelled):
        raise Conflict(f"round {round_.number} is {round_.state.value} and cannot be cancelled")
    _move(session, round_, round_.state, RoundState.cancelled, finished_at=utcnow())
    for job in session.scalars(
        select(TrainingJob).where(TrainingJob.round_id == round_id, TrainingJob.state.in_(ACTIVE_JOB_STATES))
    ):
        cancel_job(session=session, job_id=job.id, commit=False)
    session.commit()
    return round_


def retry_round(*, session: Session, round_id: int) -> list[int]:
    """Back into the stage that failed; only its failed or cancelled jobs run again (each resumes
    from its last checkpoint), what succeeded is kept."""
    round_ = _lock(session, round_id)
    if round_.state != RoundState.failed or round_.failed_stage is None:
        raise Conflict(f"round {round_.number} is {round_.state.value}; only a failed round can be retried")
    stage = RoundState(round_.failed_stage)
    retried = []
    for job in _jobs(session, stage_job_ids(round_, stage)):
        if job.state in (JobState.failed, JobState.cancelled):
            retry_job(session=session, job_id=job.id, commit=False)
            retried.append(job.id)
    _move(session, round_, RoundState.failed, stage, failed_stage=None, error=None)
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
