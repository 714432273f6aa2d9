"""Existence checks of rounds and snapshots by id, for routes that take them as links or paths.

An unknown id is a NotFound with a clear message, instead of a foreign-key error at commit time.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.db.models import DatasetSnapshot, Round
from backend.domain.errors import NotFound


def get_round(*, session: Session, round_id: int) -> Round:
    found = session.get(Round, round_id)
    if found is None:
        raise NotFound(f"round {round_id} not found")
    return found


def get_snapshot(*, session: Session, snapshot_id: int) -> DatasetSnapshot:
    found = session.get(DatasetSnapshot, snapshot_id)
    if found is None:
        raise NotFound(f"snapshot {snapshot_id} not found")
    return found
