"""Reading stored annotations back, in the terms their annotator saw (left/right)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from backend.domain.caller import Caller
from backend.domain.enums import Choice, ShownOrder
from backend.domain.errors import NotFound
from backend.domain.labels import (
    CanonicalAnswer,
    LabelWarning,
    ResponseLabel,
    ShownAnswer,
    choice_to_position,
    consistency_warnings,
)

ANNOTATION_SQL = text(
    """
SELECT x.id, x.comparison_id, x.assignment_id, a.project_id, x.a_is_safe, x.a_harm_categories,
       x.a_severity, x.b_is_safe, x.b_harm_categories, x.b_severity, x.helpfulness, x.harmlessness,
       x.confidence, x.rationale, x.time_spent_ms, x.shown_order, x.idempotency_key, x.request_hash,
       x.created_at
FROM annotation x JOIN assignment a ON a.id = x.assignment_id
WHERE x.id = :annotation_id AND x.annotator_id = :user_id
"""
)


@dataclass(frozen=True)
class SubmittedAnnotation:
    """What the annotator gets back, in the terms they saw (left/right)."""

    id: int
    assignment_id: int
    comparison_id: int
    project_id: int
    answer: ShownAnswer
    canonical: CanonicalAnswer
    shown_order: ShownOrder
    warnings: list[LabelWarning]
    created_at: dt.datetime
    replayed: bool = False


def canonical_from_row(row: Any) -> CanonicalAnswer:
    return CanonicalAnswer(
        a=ResponseLabel(bool(row.a_is_safe), tuple(row.a_harm_categories), int(row.a_severity)),
        b=ResponseLabel(bool(row.b_is_safe), tuple(row.b_harm_categories), int(row.b_severity)),
        helpfulness=Choice(row.helpfulness),
        harmlessness=Choice(row.harmlessness),
    )


def shown_from_row(row: Any) -> ShownAnswer:
    order = ShownOrder(row.shown_order)
    canonical = canonical_from_row(row)
    left, right = (canonical.a, canonical.b) if order is ShownOrder.ab else (canonical.b, canonical.a)
    return ShownAnswer(
        left=left,
        right=right,
        helpfulness=choice_to_position(canonical.helpfulness, order),
        harmlessness=choice_to_position(canonical.harmlessness, order),
        confidence=row.confidence,
        rationale=row.rationale,
        time_spent_ms=row.time_spent_ms,
    )


def get_own_annotation(*, session: Session, user: Caller, annotation_id: int) -> SubmittedAnnotation:
    row = session.execute(ANNOTATION_SQL, {"annotation_id": annotation_id, "user_id": user.id}).first()
    if row is None:
        raise NotFound(f"annotation {annotation_id} not found")
    return _from_row(row)


def list_own_annotations(
    *, session: Session, user: Caller, project_id: int | None, after_id: int, limit: int
) -> list[SubmittedAnnotation]:
    query = ANNOTATION_SQL.text.replace(
        "WHERE x.id = :annotation_id AND x.annotator_id = :user_id",
        "WHERE x.annotator_id = :user_id AND x.id > :after_id"
        + (" AND a.project_id = :project_id" if project_id is not None else "")
        + " ORDER BY x.id LIMIT :limit",
    )
    rows = session.execute(
        text(query), {"user_id": user.id, "after_id": after_id, "limit": limit, "project_id": project_id}
    ).all()
    return [_from_row(row) for row in rows]


def _from_row(row: Any) -> SubmittedAnnotation:
    answer = shown_from_row(row)
    return SubmittedAnnotation(
        id=row.id,
        assignment_id=row.assignment_id,
        comparison_id=row.comparison_id,
        project_id=row.project_id,
        answer=answer,
        canonical=canonical_from_row(row),
        shown_order=ShownOrder(row.shown_order),
        warnings=consistency_warnings(answer),
        created_at=row.created_at,
    )
