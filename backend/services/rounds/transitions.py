"""One step of each round state: what finishes it and which jobs it submits next (docs/rounds.md).

Each step runs under the round's row lock taken by lifecycle._step; it moves the state with the
conditional UPDATE of bookkeeping.move_state and returns the ids of jobs to publish after the commit.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.models import Comparison, ModelArtifact, Project, Round, TrainingJob, User
from backend.domain.enums import ComparisonStatus, JobState, RoundState
from backend.domain.errors import DomainError
from backend.services.rounds import generation, stages
from backend.services.rounds.bookkeeping import (
    lock_round,
    move_state,
    run_of,
    set_run,
    settings_of,
    stage_job_ids,
    submit_stage,
)
from backend.services.rounds.settings import is_toyworld
from backend.services.rounds.splits import split_snapshot


def jobs_by_id(session: Session, ids: list[int]) -> list[TrainingJob]:
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
    jobs = jobs_by_id(session, stage_job_ids(round_, RoundState.generating))
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
    set_run(round_, pairs=pairs)
    move_state(session, round_, RoundState.generating, RoundState.collecting)
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
    round_ = lock_round(session, round_id)
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
    set_run(round_, train_snapshot_id=split.train_id, heldout_snapshot_id=split.heldout_id)
    specs = stages.model_specs(
        settings,
        base_model_id=int(run_of(round_)["supervised_base_id"]),
        snapshot_id=split.train_id,
        eval_snapshot_id=split.heldout_id,
    )
    created = submit_stage(session, round_, RoundState.training, specs)
    closed = round_.collection_closed_at or utcnow()
    move_state(
        session,
        round_,
        RoundState.collecting,
        RoundState.training,
        snapshot_id=snapshot.id,
        collection_closed_at=closed,
    )
    return created


def _advance_training(session: Session, round_: Round) -> list[int]:
    jobs = jobs_by_id(session, stage_job_ids(round_, RoundState.training))
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
    created = submit_stage(session, round_, RoundState.policy, [spec])
    move_state(
        session,
        round_,
        RoundState.training,
        RoundState.policy,
        reward_model_id=reward.id,
        cost_model_id=cost.id,
    )
    return created


def _advance_policy(session: Session, round_: Round) -> list[int]:
    jobs = jobs_by_id(session, stage_job_ids(round_, RoundState.policy))
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
    created = submit_stage(session, round_, RoundState.evaluating, [spec])
    move_state(session, round_, RoundState.policy, RoundState.evaluating, policy_id=policy.id)
    return created


def _advance_evaluating(session: Session, round_: Round) -> list[int]:
    jobs = jobs_by_id(session, stage_job_ids(round_, RoundState.evaluating))
    outcome = _stage_outcome(jobs)
    if outcome != "done":
        return _fail_if(session, round_, outcome)
    from backend.services.rounds.reports import build_round_report

    report = {**build_round_report(session, round_), "state": RoundState.completed.value}
    move_state(
        session, round_, RoundState.evaluating, RoundState.completed, report=report, finished_at=utcnow()
    )
    return []


def _fail_if(session: Session, round_: Round, outcome: str | None) -> list[int]:
    if outcome is not None and outcome.startswith("failed: "):
        move_state(
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
