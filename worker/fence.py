"""A job's final writes, each fenced by the lease token (docs/design/reliability.md B3).

Every function first locks the job row where it still carries this worker's token and is running;
if it does not, the worker lost the job (reaped and handed on) and writes nothing, neither a state
nor an artifact. Registering the produced models and marking the job succeeded are one
transaction, so a model is registered exactly when its job succeeded.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.models import TrainingJob
from backend.domain.enums import ArtifactKind, JobState
from backend.services.jobs import Lease

RUN_FILES = frozenset({"events.jsonl", "train.log"})  # the run's records, not part of the model


def locked_if_owned(session: Session, lease: Lease) -> TrainingJob | None:
    job = session.scalar(
        select(TrainingJob)
        .where(
            TrainingJob.id == lease.job_id,
            TrainingJob.lease_token == lease.token,
            TrainingJob.state == JobState.running,
        )
        .with_for_update()
        .execution_options(populate_existing=True)  # the row as locked now, not as first loaded
    )
    if job is None:
        session.rollback()
    return job


def _close(job: TrainingJob, state: JobState, error: str | None) -> None:
    job.state, job.error, job.finished_at, job.lease_expires_at = state, error, utcnow(), None
    if state == JobState.succeeded:
        job.progress = 1.0


def finish(session: Session, lease: Lease, state: JobState, error: str | None = None) -> bool:
    job = locked_if_owned(session, lease)
    if job is None:
        return False
    _close(job, state, error)
    session.commit()
    return True


def requeue(session: Session, lease: Lease, reason: str) -> bool:
    """Give the job back for another attempt; the caller publishes after this commits."""
    job = locked_if_owned(session, lease)
    if job is None:
        return False
    job.state, job.error, job.lease_token, job.lease_expires_at = JobState.queued, reason, None, None
    job.worker_id, job.published_at = None, None
    session.commit()
    return True


def cancel_if_requested(session: Session, lease: Lease) -> bool:
    """The heartbeat stopped because of a cancel: record it (still fenced: the token is ours)."""
    job = locked_if_owned(session, lease)
    if job is None:
        return False
    if not job.cancel_requested:
        session.rollback()
        return False
    _close(job, JobState.cancelled, None)
    session.commit()
    return True


def _summary_metrics(output_dir: Path) -> dict[str, Any]:
    path = output_dir / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def stage_model_dir(output_dir: Path) -> Path:
    """The exported model without the run's bookkeeping: the top-level files of the output
    directory (hard links, no copy), leaving out checkpoints, which hold optimizer state."""
    staged = output_dir.parent / "model"
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir()
    for path in sorted(output_dir.iterdir()):
        if path.is_file() and not path.is_symlink() and path.name not in RUN_FILES:
            os.link(path, staged / path.name)
    return staged


def succeed(
    session: Session, lease: Lease, *, settings: Settings, output_dir: Path, produces: str | None
) -> bool:
    """Register the produced model and mark the job succeeded, in one fenced transaction."""
    job = locked_if_owned(session, lease)
    if job is None:
        return False
    if produces is not None:
        staged = stage_model_dir(output_dir)
        try:
            metrics = _summary_metrics(output_dir)
            _register(session, settings, job, kind=ArtifactKind(produces), staged=staged, metrics=metrics)
        finally:
            shutil.rmtree(staged, ignore_errors=True)  # links only: the registry holds its own copy
    _close(job, JobState.succeeded, None)
    session.commit()
    return True


def _register(
    session: Session,
    settings: Settings,
    job: TrainingJob,
    *,
    kind: ArtifactKind,
    staged: Path,
    metrics: dict[str, Any],
) -> None:
    from backend.services.models import register_model_dir  # the registry (issue 10, item 4)

    inputs = job.inputs or {}
    register_model_dir(
        session=session,
        settings=settings,
        kind=kind,
        source_dir=staged,
        name=f"{job.kind.value}-job-{job.id}",
        project_id=job.project_id,
        round_id=job.round_id,
        snapshot_id=inputs.get("snapshot_id"),
        parent_id=inputs.get("base_model_id"),
        training_job_id=job.id,
        config=job.config,
        metrics=metrics,
    )
