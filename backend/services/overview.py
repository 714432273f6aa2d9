"""Read queries of the admin system overview: how many rows each main table holds, and the workers
that have reported in."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.db.models import Annotation, Comparison, Project, Prompt, TrainingJob, User, WorkerHeartbeat

COUNTED = (
    ("Users", User),
    ("Projects", Project),
    ("Prompts", Prompt),
    ("Comparisons", Comparison),
    ("Annotations", Annotation),
    ("Training jobs", TrainingJob),
)


def count_rows(*, session: Session) -> dict[str, int]:
    """Row counts of the main tables, keyed by the label the overview shows."""
    return {label: session.scalar(select(func.count()).select_from(model)) or 0 for label, model in COUNTED}


def list_worker_heartbeats(*, session: Session) -> Sequence[WorkerHeartbeat]:
    """Every worker that has sent a heartbeat, the most recently seen first."""
    return session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_seen_at.desc())).all()
