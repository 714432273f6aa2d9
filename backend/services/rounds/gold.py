"""Gold items in a round: the project's hidden checks with known answers, served to the round's
annotators at the round's `gold_rate` (docs/rounds.md, "Launching a round").

The queue (backend/services/assignments.py) serves a gold comparison like any other: open, with
room under its overlap target, and not yet seen by the annotator. An imported gold item has room
for every annotator (GOLD_OVERLAP), but a comparison promoted to gold after review, or marked gold
by hand before those paths gave it the same room (backend/services/comparisons.py, `open_as_gold`)
kept the overlap it was annotated under and is usually full already, so it would never be served.
When a round with gold starts collecting, every gold item of the project gets the imported ones'
room, so each of the round's annotators can be shown each gold item once.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.db.models import Comparison
from backend.domain.enums import ComparisonStatus
from backend.services.comparisons import open_as_gold
from backend.services.imports import GOLD_OVERLAP


def gold_item_count(session: Session, project_id: int) -> int:
    """The project's gold comparisons a round can serve (retired ones are never served)."""
    found = session.scalar(
        select(func.count()).where(
            Comparison.project_id == project_id,
            Comparison.is_gold.is_(True),
            Comparison.status != ComparisonStatus.retired,
        )
    )
    return int(found or 0)


def open_gold_items(session: Session, project_id: int) -> int:
    """Give every non-retired gold item of the project room for every annotator (overlap target at
    least GOLD_OVERLAP, status open); returns how many changed. Idempotent.

    The rows are locked in id order first, as the queue locks one comparison at a time, so this
    waits for a claim or a submission in flight instead of deadlocking with another bulk update.
    """
    where = (
        Comparison.project_id == project_id,
        Comparison.is_gold.is_(True),
        Comparison.status != ComparisonStatus.retired,
        Comparison.overlap_target < GOLD_OVERLAP,
    )
    # populate_existing: rows already in the session are reloaded under the lock, so the flush
    # compares the new values with the database's, not with a stale copy.
    locked = select(Comparison).where(*where).order_by(Comparison.id).with_for_update()
    found = list(session.scalars(locked.execution_options(populate_existing=True)))
    for comparison in found:
        open_as_gold(comparison)  # the room set_gold and adjudication give a new gold item
    session.flush()
    return len(found)
