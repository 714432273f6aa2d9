"""The annotation queue's invariants, checked in SQL after a concurrent run
(docs/design/reliability.md A1, A7).

Shared by the HTTP race test and the threaded property test, so both hold the queue to the same
rules: every acknowledged submit is stored and nothing else is, no annotator has two annotations of
a comparison, the counters match the rows, every annotation belongs to a submitted assignment of
the same annotator and comparison, and no comparison holds more than its overlap allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, text

STORED_SQL = text(
    "SELECT x.id FROM annotation x JOIN comparison c ON c.id = x.comparison_id WHERE c.project_id = :p"
)
PER_COMPARISON_SQL = text(
    """
SELECT c.id, c.overlap_target, c.submitted_count, c.active_count,
  (SELECT count(*) FROM annotation x WHERE x.comparison_id = c.id) AS votes,
  (SELECT count(DISTINCT x.annotator_id) FROM annotation x WHERE x.comparison_id = c.id) AS people,
  (SELECT count(*) FROM assignment a WHERE a.comparison_id = c.id AND a.state = 'active') AS live
FROM comparison c WHERE c.project_id = :p
"""
)
ORPHANS_SQL = text(
    """
SELECT count(*) FROM annotation x JOIN assignment a ON a.id = x.assignment_id
WHERE x.comparison_id IN (SELECT id FROM comparison WHERE project_id = :p)
  AND (a.state <> 'submitted' OR a.annotator_id <> x.annotator_id OR a.comparison_id <> x.comparison_id)
"""
)


def assert_queue_invariants(
    db: Connection, project_id: int, acked: Iterable[int], allowed_votes: Callable[[Any], int]
) -> list[Any]:
    """Assert the invariants for one project; ``allowed_votes(row)`` is the most annotations the
    comparison of a PER_COMPARISON_SQL row may hold. Returns those rows."""
    acked = set(acked)
    stored = {row.id for row in db.execute(STORED_SQL, {"p": project_id})}
    rows = list(db.execute(PER_COMPARISON_SQL, {"p": project_id}))
    orphans = db.execute(ORPHANS_SQL, {"p": project_id}).scalar()
    assert not acked - stored, f"acknowledged but missing: {sorted(acked - stored)}"
    assert not stored - acked, f"stored but never acknowledged: {sorted(stored - acked)}"
    assert orphans == 0, "annotations without a matching submitted assignment"
    for row in rows:
        assert row.votes == row.people == row.submitted_count, f"duplicates or a drifting counter: {row}"
        assert row.active_count == row.live, f"lease counter drifted: {row}"
        assert row.votes <= allowed_votes(row), f"over k: {row}"
    return rows
