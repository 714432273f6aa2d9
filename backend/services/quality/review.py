"""The reviewer queue (comparisons whose annotators disagree) and adjudication."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from backend.db.models import Adjudication, AuditEvent, Comparison, Project, Prompt, User
from backend.domain.enums import UserRole
from backend.domain.errors import InvalidInput, NotFound
from backend.domain.labels import CanonicalAnswer, ResponseLabel, response_label_errors
from backend.services.access import can_see_project
from backend.services.comparisons import lock_comparison, make_gold
from backend.services.projects import taxonomy_keys
from backend.services.quality.aggregation import Aggregate, aggregate, disagreement
from backend.services.quality.annotators import annotator_stats
from backend.services.quality.report import weights_of
from backend.services.quality.votes import Vote, latest_adjudications, load_gold, load_votes

DISAGREEMENT_SQL = text(
    """
SELECT x.comparison_id, count(*) AS votes,
       EXISTS (SELECT 1 FROM adjudication d WHERE d.comparison_id = x.comparison_id) AS adjudicated
FROM annotation x JOIN comparison c ON c.id = x.comparison_id
WHERE c.project_id = :project_id AND NOT c.is_gold
GROUP BY x.comparison_id
HAVING count(DISTINCT x.helpfulness) > 1 OR count(DISTINCT x.harmlessness) > 1
    OR count(DISTINCT x.a_is_safe) > 1 OR count(DISTINCT x.b_is_safe) > 1
ORDER BY adjudicated, count(*) DESC, x.comparison_id
LIMIT :limit OFFSET :offset
"""
)


# The first open (unadjudicated) disagreement other than the one just saved, in queue order.
NEXT_OPEN_SQL = text(
    """
SELECT x.comparison_id
FROM annotation x JOIN comparison c ON c.id = x.comparison_id
WHERE c.project_id = :project_id AND NOT c.is_gold AND x.comparison_id <> :after_id
  AND NOT EXISTS (SELECT 1 FROM adjudication d WHERE d.comparison_id = x.comparison_id)
GROUP BY x.comparison_id
HAVING count(DISTINCT x.helpfulness) > 1 OR count(DISTINCT x.harmlessness) > 1
    OR count(DISTINCT x.a_is_safe) > 1 OR count(DISTINCT x.b_is_safe) > 1
ORDER BY count(*) DESC, x.comparison_id
LIMIT 1
"""
)


@dataclass(frozen=True)
class ReviewItem:
    comparison_id: int
    prompt: str
    votes: int
    disagreeing: list[str]
    ties: list[str]
    adjudicated: bool


@dataclass(frozen=True)
class VoteView:
    vote: Vote
    annotator_email: str
    weight: float


@dataclass(frozen=True)
class ComparisonDetail:
    comparison: Comparison
    votes: list[VoteView]
    aggregate: Aggregate | None
    adjudications: list[Adjudication]
    disagreeing: list[str]


def review_queue(session: Session, *, project: Project, limit: int = 50, offset: int = 0) -> list[ReviewItem]:
    rows = session.execute(
        DISAGREEMENT_SQL, {"project_id": project.id, "limit": limit, "offset": offset}
    ).all()
    ids = [r.comparison_id for r in rows]
    if not ids:
        return []
    votes = load_votes(session, project_id=project.id)
    weights = weights_of(annotator_stats(votes, load_gold(session, project_id=project.id)))
    adjudications = latest_adjudications(session, project_id=project.id)
    prompts: dict[int, str] = dict(
        session.execute(
            select(Comparison.id, func.left(Prompt.text, 200))
            .join(Prompt, Prompt.id == Comparison.prompt_id)
            .where(Comparison.id.in_(ids))
        ).all()
    )
    items = []
    for row in rows:
        group = [v for v in votes if v.comparison_id == row.comparison_id]
        agg = aggregate(row.comparison_id, group, weights, adjudications.get(row.comparison_id))
        items.append(
            ReviewItem(
                comparison_id=row.comparison_id,
                prompt=prompts.get(row.comparison_id, ""),
                votes=row.votes,
                disagreeing=disagreement(group),
                ties=agg.ties,
                adjudicated=row.adjudicated,
            )
        )
    return items


def count_disagreements(session: Session, *, project: Project) -> int:
    rows = session.execute(DISAGREEMENT_SQL, {"project_id": project.id, "limit": 1_000_000, "offset": 0})
    return len(rows.all())


def next_open_disagreement(session: Session, *, project_id: int, after_id: int) -> int | None:
    """Where a reviewer goes after saving: the next comparison still waiting for a verdict."""
    found = session.execute(NEXT_OPEN_SQL, {"project_id": project_id, "after_id": after_id}).scalar()
    return int(found) if found is not None else None


def visible_comparison(session: Session, *, user: User, comparison_id: int) -> Comparison:
    """Reviewers and admins only (routes enforce the role); scoped to visible projects."""
    comparison = session.get(Comparison, comparison_id)
    if comparison is None or not can_see_project(session, user=user, project_id=comparison.project_id):
        raise NotFound(f"comparison {comparison_id} not found")
    if user.role is UserRole.annotator:
        raise NotFound(f"comparison {comparison_id} not found")
    return comparison


def comparison_detail(session: Session, *, comparison: Comparison) -> ComparisonDetail:
    project_id = comparison.project_id
    votes = load_votes(session, project_id=project_id)
    weights = weights_of(annotator_stats(votes, load_gold(session, project_id=project_id)))
    mine = [v for v in votes if v.comparison_id == comparison.id]
    emails = dict(
        session.execute(select(User.id, User.email).where(User.id.in_({v.annotator_id for v in mine}))).all()
    )
    history = list(
        session.scalars(
            select(Adjudication).where(Adjudication.comparison_id == comparison.id).order_by(Adjudication.id)
        )
    )
    agg = (
        aggregate(comparison.id, mine, weights, history[-1] if history else None) if mine or history else None
    )
    return ComparisonDetail(
        comparison=comparison,
        votes=[VoteView(v, emails.get(v.annotator_id, "?"), weights.get(v.annotator_id, 1.0)) for v in mine],
        aggregate=agg,
        adjudications=history,
        disagreeing=disagreement(mine),
    )


def gold_from_answer(answer: CanonicalAnswer) -> dict[str, Any]:
    return {
        "helpfulness": answer.helpfulness.value,
        "harmlessness": answer.harmlessness.value,
        "a_is_safe": answer.a.is_safe,
        "b_is_safe": answer.b.is_safe,
        "a_harm_categories": list(answer.a.harm_categories),
        "b_harm_categories": list(answer.b.harm_categories),
        "a_severity": answer.a.severity,
        "b_severity": answer.b.severity,
    }


def without_harm_when_safe(label: ResponseLabel) -> ResponseLabel:
    """A "safe" verdict drops categories and severity left over from the unsafe aggregate the form
    was prefilled with; refusing them would block the very change the reviewer means to make."""
    return ResponseLabel(is_safe=True) if label.is_safe else label


def adjudicate(
    *,
    session: Session,
    reviewer: User,
    comparison: Comparison,
    answer: CanonicalAnswer,
    note: str = "",
    promote_to_gold: bool = False,
) -> Adjudication:
    project = session.get(Project, comparison.project_id)
    assert project is not None
    allowed = taxonomy_keys(project)
    answer = replace(answer, a=without_harm_when_safe(answer.a), b=without_harm_when_safe(answer.b))
    errors = response_label_errors(answer.a, "response A", allowed)
    errors += response_label_errors(answer.b, "response B", allowed)
    if len(note) > 4000:
        errors.append("the note is longer than 4000 characters")
    if errors:
        raise InvalidInput("; ".join(errors), code="invalid_labels")
    adjudication = Adjudication(
        comparison_id=comparison.id,
        reviewer_id=reviewer.id,
        helpfulness=answer.helpfulness,
        harmlessness=answer.harmlessness,
        a_is_safe=answer.a.is_safe,
        b_is_safe=answer.b.is_safe,
        a_harm_categories=list(answer.a.harm_categories),
        b_harm_categories=list(answer.b.harm_categories),
        a_severity=answer.a.severity,
        b_severity=answer.b.severity,
        note=note,
    )
    gold_record: dict[str, int] = {}
    if promote_to_gold:  # with room for every annotator, or the queue would never serve it
        lock_comparison(session, comparison)
        gold_record = make_gold(comparison, gold_from_answer(answer))
    session.add(adjudication)
    session.flush()
    session.add(
        AuditEvent(
            actor_id=reviewer.id,
            action="comparison.adjudicate",
            object_type="comparison",
            object_id=comparison.id,
            detail={"adjudication_id": adjudication.id, "promote_to_gold": promote_to_gold, **gold_record},
        )
    )
    session.commit()
    return adjudication
