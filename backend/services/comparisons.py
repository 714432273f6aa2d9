"""Comparisons as admins and reviewers manage them: list, change overlap/priority, retire, gold.

Changing the overlap target k keeps the queue's invariant: the row is locked, its status is
recomputed from the counters (complete when submitted >= k), and submits beyond the new k are
refused by the submit path (services/submissions.py), so no comparison ever ends with more than
k submitted annotations. Sort and filter fields come from allowlists (docs/design/reliability.md C9).

A gold comparison is served by the queue like any other (open, with room, not yet seen by the
annotator), so one that becomes gold gets the room imported gold items have (`open_as_gold`), and
one that stops being gold goes back to its ordinary overlap (`clear_gold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from backend.db.models import AuditEvent, Comparison, Project, User
from backend.domain.enums import ComparisonStatus
from backend.domain.errors import DomainError, InvalidInput, NotFound
from backend.domain.taxonomy import MAX_SEVERITY
from backend.services.imports import GOLD_OVERLAP
from backend.services.projects import MAX_OVERLAP, taxonomy_keys

SORT_FIELDS = {
    "id": Comparison.id,
    "priority": Comparison.priority,
    "submitted_count": Comparison.submitted_count,
    "overlap_target": Comparison.overlap_target,
    "created_at": Comparison.created_at,
}
MAX_PAGE = 500
# The audit detail key that records the overlap a comparison had before it became gold.
OVERLAP_BEFORE_GOLD = "overlap_before_gold"


class BadQuery(DomainError):
    """A malformed query parameter (400): unknown sort field and the like."""

    status_code = 400
    code = "bad_query"


@dataclass(frozen=True)
class ComparisonFilter:
    status: ComparisonStatus | None = None
    is_gold: bool | None = None
    round_id: int | None = None
    sort: str = "id"
    descending: bool = False
    limit: int = 100
    offset: int = 0


def list_comparisons(
    session: Session, *, project: Project, where: ComparisonFilter
) -> tuple[list[Comparison], int]:
    if where.sort not in SORT_FIELDS:
        raise BadQuery(f"cannot sort by {where.sort!r}; use one of {', '.join(sorted(SORT_FIELDS))}")
    if not 1 <= where.limit <= MAX_PAGE or where.offset < 0:
        raise BadQuery(f"limit must be 1-{MAX_PAGE} and offset >= 0")
    query = select(Comparison).where(Comparison.project_id == project.id)
    if where.status is not None:
        query = query.where(Comparison.status == where.status)
    if where.is_gold is not None:
        query = query.where(Comparison.is_gold.is_(where.is_gold))
    if where.round_id is not None:
        query = query.where(Comparison.round_id == where.round_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    column = SORT_FIELDS[where.sort]
    ordered = query.order_by(column.desc() if where.descending else column.asc(), Comparison.id)
    rows = list(session.scalars(ordered.limit(where.limit).offset(where.offset)))
    return rows, int(total)


def get_comparison(session: Session, *, project: Project, comparison_id: int) -> Comparison:
    comparison = session.get(Comparison, comparison_id)
    if comparison is None or comparison.project_id != project.id:
        raise NotFound(f"comparison {comparison_id} not found")
    return comparison


@dataclass(frozen=True)
class ComparisonChanges:
    overlap_target: int | None = None
    priority: float | None = None
    retired: bool | None = None


def update_comparison(
    *, session: Session, actor: User, comparison_id: int, changes: ComparisonChanges
) -> Comparison:
    if changes.overlap_target is not None and not 1 <= changes.overlap_target <= MAX_OVERLAP:
        raise InvalidInput(f"overlap must be between 1 and {MAX_OVERLAP}", code="invalid_overlap")
    # Lock first: claims and submits on this comparison wait until the new k is in place.
    session.execute(text("SELECT id FROM comparison WHERE id = :c FOR UPDATE"), {"c": comparison_id})
    comparison = session.get(Comparison, comparison_id, populate_existing=True)
    assert comparison is not None
    if changes.overlap_target is not None:
        comparison.overlap_target = changes.overlap_target
    if changes.priority is not None:
        comparison.priority = changes.priority
    if changes.retired is True:
        comparison.status = ComparisonStatus.retired
    elif changes.retired is False or comparison.status is not ComparisonStatus.retired:
        full = comparison.submitted_count >= comparison.overlap_target
        comparison.status = ComparisonStatus.complete if full else ComparisonStatus.open
    session.add(
        AuditEvent(
            actor_id=actor.id,
            action="comparison.update",
            object_type="comparison",
            object_id=comparison.id,
            detail={k: v for k, v in vars(changes).items() if v is not None},
        )
    )
    session.commit()
    return comparison


def set_priorities(*, session: Session, actor: User, project: Project, priorities: dict[int, float]) -> int:
    """Bulk priority update (what active learning will call). Unknown ids are an error."""
    ids = sorted(priorities)
    found = set(
        session.scalars(
            select(Comparison.id).where(Comparison.project_id == project.id, Comparison.id.in_(ids))
        )
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"comparisons not in this project: {missing[:10]}")
    for cid in ids:  # ascending id order: the same lock order as every other writer
        session.execute(
            text("UPDATE comparison SET priority = :p WHERE id = :c"), {"p": float(priorities[cid]), "c": cid}
        )
    session.add(
        AuditEvent(
            actor_id=actor.id,
            action="comparison.priorities",
            object_type="project",
            object_id=project.id,
            detail={"count": len(ids)},
        )
    )
    session.commit()
    return len(ids)


def _gold_side_errors(labels: dict[str, Any], side: str, allowed: frozenset[str]) -> list[str]:
    cats, severity = labels.get(f"{side}_harm_categories"), labels.get(f"{side}_severity")
    if f"{side}_is_safe" not in labels:
        return [f"{side}_harm_categories/{side}_severity need {side}_is_safe"] if cats or severity else []
    safe = labels[f"{side}_is_safe"]
    errors = [] if isinstance(safe, bool) else [f"{side}_is_safe must be true or false"]
    if cats is not None:
        unknown = sorted(set(cats) - allowed)
        errors += [f"{side}_harm_categories: unknown {', '.join(unknown)}"] if unknown else []
        errors += [f"response {side.upper()} is safe, so it has no harm categories"] if safe and cats else []
    if severity is not None:
        if not isinstance(severity, int) or not 0 <= severity <= MAX_SEVERITY:
            errors.append(f"{side}_severity must be 0-{MAX_SEVERITY}")
        elif bool(safe) == bool(severity):
            errors.append(f"{side}_severity must be 0 exactly when response {side.upper()} is safe")
    return errors


def validate_gold_labels(project: Project, labels: dict[str, Any]) -> dict[str, Any]:
    allowed = taxonomy_keys(project)
    errors = [
        f"{axis} must be a, b or equal"
        for axis in ("helpfulness", "harmlessness")
        if axis in labels and labels[axis] not in ("a", "b", "equal")
    ]
    errors += _gold_side_errors(labels, "a", allowed) + _gold_side_errors(labels, "b", allowed)
    if not any(k in labels for k in ("helpfulness", "harmlessness", "a_is_safe", "b_is_safe")):
        errors.append("gold labels need at least one of helpfulness, harmlessness, a_is_safe, b_is_safe")
    if errors:
        raise InvalidInput("; ".join(errors), code="invalid_gold")
    return labels


def open_as_gold(comparison: Comparison) -> None:
    """Give a gold comparison the room imported gold items have: an overlap target of at least
    GOLD_OVERLAP, so every annotator can be shown it once, and status open. A retired one stays
    retired (retiring takes it out of every queue, gold or not)."""
    comparison.overlap_target = max(comparison.overlap_target, GOLD_OVERLAP)
    if comparison.status is not ComparisonStatus.retired:
        comparison.status = ComparisonStatus.open


def make_gold(comparison: Comparison, labels: dict[str, Any]) -> dict[str, int]:
    """Make a locked comparison a gold check with these (validated) labels and room for every
    annotator. Returns the audit detail that records the overlap it had, when it was not gold
    before, so that clearing gold can restore it (`clear_gold`)."""
    record = {} if comparison.is_gold else {OVERLAP_BEFORE_GOLD: comparison.overlap_target}
    comparison.is_gold = True
    comparison.gold_labels = labels
    open_as_gold(comparison)
    return record


def clear_gold(session: Session, project: Project, comparison: Comparison) -> None:
    """Make a locked gold comparison ordinary work again: its overlap target goes back to the one
    recorded when it became gold (the project's default overlap if none was recorded, as for
    imported gold items), and its status is recomputed from its submitted annotations, so that it
    is complete when it has enough instead of waiting for GOLD_OVERLAP of them."""
    if not comparison.is_gold:
        return
    recorded = session.scalar(
        select(AuditEvent.detail[OVERLAP_BEFORE_GOLD].as_integer())
        .where(
            AuditEvent.object_type == "comparison",
            AuditEvent.object_id == comparison.id,
            AuditEvent.detail.has_key(OVERLAP_BEFORE_GOLD),
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    comparison.is_gold = False
    comparison.gold_labels = None
    comparison.overlap_target = recorded or project.default_overlap
    if comparison.status is not ComparisonStatus.retired:
        full = comparison.submitted_count >= comparison.overlap_target
        comparison.status = ComparisonStatus.complete if full else ComparisonStatus.open


def lock_comparison(session: Session, comparison: Comparison) -> None:
    """Lock the row and reload its counters: claims and submits change them under this lock, and
    the status computed from them must not race with one in flight."""
    session.refresh(comparison, with_for_update=True)


def set_gold(
    *, session: Session, actor: User, project: Project, comparison: Comparison, labels: dict[str, Any] | None
) -> Comparison:
    """Make a comparison a hidden gold check with known answers, or (labels None) an ordinary one."""
    valid = validate_gold_labels(project, labels) if labels is not None else None
    lock_comparison(session, comparison)
    detail: dict[str, int] = {}
    if valid is not None:
        detail = make_gold(comparison, valid)
    else:
        clear_gold(session, project, comparison)
    session.add(
        AuditEvent(
            actor_id=actor.id,
            action="comparison.gold_set" if labels is not None else "comparison.gold_clear",
            object_type="comparison",
            object_id=comparison.id,
            detail=detail,
        )
    )
    session.commit()
    return comparison
