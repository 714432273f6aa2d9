"""The lease reaper's decisions, in Postgres (docs/design/reliability.md B3). The beat task
publishes after the commit, from the ids these functions return.

- A running job whose lease expired lost its worker (killed, partitioned, paused). It is queued
  again while attempts remain, failed after its last one, or cancelled if a cancel was pending.
  A NULL lease or heartbeat counts from started_at, so a worker that died before its first
  heartbeat is reaped too.
- A queued job whose wake-up message was published long ago (or never) may have lost it: Redis
  is at-least-once at best. It is published again; a duplicate delivery is harmless, because only
  one claim can move a row from queued to running.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.db.models import TrainingJob
from backend.domain.enums import JobState


@dataclass
class ReapResult:
    requeued: list[int] = field(default_factory=list)  # publish these after the commit
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    republish: list[int] = field(default_factory=list)  # queued jobs whose message may be lost
    queues: dict[int, str] = field(default_factory=dict)  # job id -> its Celery queue

    @property
    def to_publish(self) -> list[int]:
        return self.requeued + self.republish


def _expired(now: dt.datetime, lease_seconds: float) -> object:
    since = func.coalesce(TrainingJob.heartbeat_at, TrainingJob.started_at, TrainingJob.created_at)
    return or_(
        TrainingJob.lease_expires_at < now,
        and_(TrainingJob.lease_expires_at.is_(None), since < now - dt.timedelta(seconds=lease_seconds)),
    )


def reap_expired_leases(*, session: Session, lease_seconds: float, limit: int = 100) -> ReapResult:
    """Hand back, fail or cancel running jobs whose lease expired. Commits."""
    now = utcnow()
    result = ReapResult()
    jobs = session.scalars(
        select(TrainingJob)
        .where(TrainingJob.state == JobState.running, _expired(now, lease_seconds))  # type: ignore[arg-type]
        .order_by(TrainingJob.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for job in jobs:
        lost = f"worker {job.worker_id or '?'} lost its lease on attempt {job.attempt}"
        job.lease_token, job.lease_expires_at = None, None
        if job.cancel_requested:
            job.state, job.finished_at = JobState.cancelled, now
            result.cancelled.append(job.id)
        elif job.attempt >= job.max_attempts:
            job.state, job.finished_at = JobState.failed, now
            job.error = f"{lost}, the last of {job.max_attempts}"
            result.failed.append(job.id)
        else:
            job.state, job.published_at, job.error = JobState.queued, None, lost
            result.requeued.append(job.id)
            result.queues[job.id] = job.queue
    session.commit()
    return result


def stale_queued_jobs(
    *, session: Session, republish_after_s: float, limit: int = 100
) -> list[tuple[int, str]]:
    """Queued jobs whose message went out longer ago than `republish_after_s` (or never, counting
    from creation); their published_at is moved to now, so each is re-sent once per period."""
    now = utcnow()
    cutoff = now - dt.timedelta(seconds=republish_after_s)
    jobs = session.scalars(
        select(TrainingJob)
        .where(
            TrainingJob.state == JobState.queued,
            func.coalesce(TrainingJob.published_at, TrainingJob.created_at) < cutoff,
        )
        .order_by(TrainingJob.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for job in jobs:
        job.published_at = now
    session.commit()
    return [(job.id, job.queue) for job in jobs]
