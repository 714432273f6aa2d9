"""An annotator's progress in a project: what they did, and what is left for them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

PROGRESS_SQL = text(
    """
SELECT
  (SELECT count(*) FROM annotation x JOIN assignment a ON a.id = x.assignment_id
     WHERE a.project_id = :p AND x.annotator_id = :u) AS submitted,
  (SELECT count(*) FROM annotation x JOIN assignment a ON a.id = x.assignment_id
     WHERE a.project_id = :p AND x.annotator_id = :u AND x.created_at >= date_trunc('day', now())) AS today,
  (SELECT count(*) FROM assignment a WHERE a.project_id = :p AND a.annotator_id = :u
     AND a.state = 'skipped') AS skipped,
  (SELECT count(*) FROM comparison c WHERE c.project_id = :p AND c.status = 'open' AND NOT c.is_gold
     AND c.submitted_count + c.active_count < c.overlap_target
     AND NOT EXISTS (SELECT 1 FROM assignment m WHERE m.comparison_id = c.id AND m.annotator_id = :u))
     AS available,
  (SELECT count(*) FROM comparison c WHERE c.project_id = :p AND c.status = 'open') AS open,
  (SELECT count(*) FROM comparison c WHERE c.project_id = :p AND c.status = 'complete') AS complete
"""
)


@dataclass(frozen=True)
class Progress:
    project_id: int
    submitted_by_me: int
    submitted_by_me_today: int
    skipped_by_me: int
    available_to_me: int
    comparisons_open: int
    comparisons_complete: int


def progress(session: Session, *, user_id: int, project_id: int) -> Progress:
    row = session.execute(PROGRESS_SQL, {"p": project_id, "u": user_id}).one()
    return Progress(project_id, row.submitted, row.today, row.skipped, row.available, row.open, row.complete)
