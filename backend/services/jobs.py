"""Training jobs in Postgres: creation, claiming with a lease, heartbeats and fencing.

The broker message is only a wake-up. A worker owns a job once a conditional UPDATE has moved it
from queued to running with a fresh lease token; every later write is fenced by that token, so a
worker that lost its lease (paused, partitioned) can never overwrite the new owner's progress.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.db.models import TrainingJob
from backend.domain.enums import JobKind, JobState
from backend.domain.errors import NotFound


@dataclass(frozen=True)
class Lease:
    job_id: int
    token: str
    attempt: int
    expires_at: dt.datetime


def create_job(
    *,
    session: Session,
    kind: JobKind,
    config: dict[str, Any],
    queue: str = "gpu",
    project_id: int | None = None,
    round_id: int | None = None,
    max_attempts: int = 3,
) -> TrainingJob:
    job = TrainingJob(
        kind=kind,
        config=config,
        queue=queue,
        project_id=project_id,
        round_id=round_id,
        max_attempts=max_attempts,
        state=JobState.queued,
    )
    session.add(job)
    session.flush()
    return job


def claim_next_job(*, session: Session, worker_id: str, queue: str, lease_seconds: int) -> Lease | None:
    """Claim the oldest queued job of a queue. Concurrent claimers skip rows another one has
    locked, so each job is claimed exactly once, without waiting on each other."""
    row = session.execute(
        select(TrainingJob.id)
        .where(TrainingJob.state == JobState.queued, TrainingJob.queue == queue)
        .order_by(TrainingJob.created_at, TrainingJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        session.rollback()
        return None
    lease = _take_lease(session, job_id=row[0], worker_id=worker_id, lease_seconds=lease_seconds)
    session.commit()
    return lease


def claim_job(*, session: Session, job_id: int, worker_id: str, lease_seconds: int) -> Lease | None:
    """Claim one named job (the Celery task's path). None when it is not queued any more, which is
    what a duplicate delivery of the same message sees."""
    lease = _take_lease(session, job_id=job_id, worker_id=worker_id, lease_seconds=lease_seconds)
    session.commit()
    return lease


def _take_lease(session: Session, *, job_id: int, worker_id: str, lease_seconds: int) -> Lease | None:
    now = utcnow()
    token = str(uuid.uuid4())
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.state == JobState.queued)
        .values(
            state=JobState.running,
            lease_token=token,
            lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
            heartbeat_at=now,
            worker_id=worker_id,
            attempt=TrainingJob.attempt + 1,
            started_at=now,
        )
        .returning(TrainingJob.attempt, TrainingJob.lease_expires_at)
    ).first()
    if result is None:
        return None
    return Lease(job_id=job_id, token=token, attempt=int(result[0]), expires_at=result[1] or now)


def renew_lease(*, session: Session, lease: Lease, lease_seconds: int, progress: float | None = None) -> bool:
    """Heartbeat. False means the lease is gone (reaped or cancelled): the caller must stop."""
    now = utcnow()
    values: dict[str, Any] = {
        "heartbeat_at": now,
        "lease_expires_at": now + dt.timedelta(seconds=lease_seconds),
    }
    if progress is not None:
        values["progress"] = progress
    result = session.execute(
        update(TrainingJob)
        .where(
            TrainingJob.id == lease.job_id,
            TrainingJob.lease_token == lease.token,
            TrainingJob.state == JobState.running,
            TrainingJob.cancel_requested.is_(False),
        )
        .values(**values)
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish_job(*, session: Session, lease: Lease, state: JobState, error: str | None = None) -> bool:
    """Move a running job to a final state, fenced by the lease token."""
    result = session.execute(
        update(TrainingJob)
        .where(
            TrainingJob.id == lease.job_id,
            TrainingJob.lease_token == lease.token,
            TrainingJob.state == JobState.running,
        )
        .values(
            state=state,
            error=error,
            finished_at=utcnow(),
            lease_expires_at=None,
            progress=1.0 if state == JobState.succeeded else TrainingJob.progress,
        )
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get_job(*, session: Session, job_id: int) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise NotFound(f"training job {job_id} not found")
    return job
