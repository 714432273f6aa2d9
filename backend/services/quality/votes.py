"""Raw votes of a project, read once for the quality computations (never modified)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import Adjudication, Annotation, Comparison
from backend.domain.enums import Choice, ShownOrder
from backend.domain.labels import CanonicalAnswer, ResponseLabel, canonical_warnings


@dataclass(frozen=True)
class Vote:
    annotation_id: int
    comparison_id: int
    annotator_id: int
    round_id: int | None
    is_gold: bool
    answer: CanonicalAnswer
    shown_order: ShownOrder
    confidence: int | None
    time_spent_ms: int
    rationale: str
    created_at: dt.datetime

    def side(self, side: str) -> ResponseLabel:
        return self.answer.a if side == "a" else self.answer.b

    def choice(self, axis: str) -> Choice:
        return self.answer.helpfulness if axis == "helpfulness" else self.answer.harmlessness

    def chose_left(self, axis: str) -> bool | None:
        """Whether a strict preference picked the response shown on the left (None for 'equal')."""
        choice = self.choice(axis)
        if choice is Choice.equal:
            return None
        return (choice is Choice.a) == (self.shown_order is ShownOrder.ab)

    @property
    def warnings(self) -> list[str]:
        return canonical_warnings(self.answer)


VOTE_COLUMNS = (
    Annotation.id,
    Annotation.comparison_id,
    Annotation.annotator_id,
    Comparison.round_id,
    Comparison.is_gold,
    Annotation.a_is_safe,
    Annotation.a_harm_categories,
    Annotation.a_severity,
    Annotation.b_is_safe,
    Annotation.b_harm_categories,
    Annotation.b_severity,
    Annotation.helpfulness,
    Annotation.harmlessness,
    Annotation.shown_order,
    Annotation.confidence,
    Annotation.time_spent_ms,
    Annotation.rationale,
    Annotation.created_at,
)


def _vote(row: Any) -> Vote:
    return Vote(
        annotation_id=row[0],
        comparison_id=row[1],
        annotator_id=row[2],
        round_id=row[3],
        is_gold=row[4],
        answer=CanonicalAnswer(
            a=ResponseLabel(row[5], tuple(row[6]), row[7]),
            b=ResponseLabel(row[8], tuple(row[9]), row[10]),
            helpfulness=Choice(row[11]),
            harmlessness=Choice(row[12]),
        ),
        shown_order=ShownOrder(row[13]),
        confidence=row[14],
        time_spent_ms=row[15],
        rationale=row[16],
        created_at=row[17],
    )


def load_votes(
    session: Session,
    *,
    project_id: int,
    comparison_ids: list[int] | None = None,
    after_id: int = 0,
    limit: int | None = None,
) -> list[Vote]:
    query = (
        select(*VOTE_COLUMNS)
        .join(Comparison, Comparison.id == Annotation.comparison_id)
        .where(Comparison.project_id == project_id)
        .order_by(Annotation.id)
    )
    if comparison_ids is not None:
        query = query.where(Annotation.comparison_id.in_(comparison_ids))
    if after_id:
        query = query.where(Annotation.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    return [_vote(row) for row in session.execute(query)]


def load_gold(session: Session, *, project_id: int) -> dict[int, dict[str, Any]]:
    rows = session.execute(
        select(Comparison.id, Comparison.gold_labels).where(
            Comparison.project_id == project_id, Comparison.is_gold.is_(True)
        )
    )
    return {cid: labels or {} for cid, labels in rows}


def latest_adjudications(session: Session, *, project_id: int) -> dict[int, Adjudication]:
    rows = session.scalars(
        select(Adjudication)
        .join(Comparison, Comparison.id == Adjudication.comparison_id)
        .where(Comparison.project_id == project_id)
        .order_by(Adjudication.id)
    )
    return {adj.comparison_id: adj for adj in rows}  # later ones overwrite earlier ones


def by_comparison(votes: list[Vote]) -> dict[int, list[Vote]]:
    grouped: dict[int, list[Vote]] = {}
    for vote in votes:
        grouped.setdefault(vote.comparison_id, []).append(vote)
    return grouped
