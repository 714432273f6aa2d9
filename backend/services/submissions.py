"""Submitting an annotation: validated, idempotent, fenced by the lease, never over the overlap.

Idempotency (draft-ietf-httpapi-idempotency-key-header; docs/design/reliability.md A3, A4): each submit
carries a key. The same key with the same body replays the stored result; the same key with a
different body is refused (422). The unique (annotator, key) and (comparison, annotator)
constraints make duplicates impossible even when retries race.

Late submits (A2): a lease that ran out but still holds its slot is accepted. One whose slot was
reclaimed is accepted only while the comparison still has room; otherwise 409 `lease_expired`.
Lowering a comparison's overlap below its submitted count makes further submits 409 too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict
from typing import Any, LiteralString, NamedTuple

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from backend.db import raw
from backend.domain.caller import Caller
from backend.domain.enums import AssignmentState, ShownOrder
from backend.domain.errors import Conflict, InvalidInput, NotFound
from backend.domain.labels import (
    CanonicalAnswer,
    ShownAnswer,
    answer_errors,
    consistency_warnings,
    to_canonical,
)
from backend.services.annotation_views import SubmittedAnnotation, get_own_annotation
from backend.services.assignments import release_lease

MAX_KEY_LENGTH = 100

LOOKUP_SQL: LiteralString = """
SELECT a.comparison_id, a.project_id, a.shown_order,
       (SELECT array_agg(e->>'key') FROM jsonb_array_elements(p.harm_taxonomy) e) AS category_keys,
       x.id AS existing_id, x.request_hash AS existing_hash, x.assignment_id AS existing_assignment
FROM assignment a
JOIN project p ON p.id = a.project_id
LEFT JOIN annotation x ON x.annotator_id = %(user_id)s AND x.idempotency_key = %(key)s
WHERE a.id = %(assignment_id)s AND a.annotator_id = %(user_id)s
"""

WRITE_SQL: LiteralString = """
WITH ins AS (
    INSERT INTO annotation (comparison_id, annotator_id, assignment_id,
        a_is_safe, a_harm_categories, a_severity, b_is_safe, b_harm_categories, b_severity,
        helpfulness, harmlessness, confidence, rationale, time_spent_ms, shown_order,
        idempotency_key, request_hash)
    VALUES (%(comparison_id)s, %(user_id)s, %(assignment_id)s,
        %(a_is_safe)s, %(a_harm_categories)s, %(a_severity)s,
        %(b_is_safe)s, %(b_harm_categories)s, %(b_severity)s,
        CAST(%(helpfulness)s AS choice), CAST(%(harmlessness)s AS choice), %(confidence)s, %(rationale)s,
        %(time_spent_ms)s, CAST(%(shown_order)s AS shown_order), %(key)s, %(request_hash)s)
    RETURNING id, created_at
), done AS (
    UPDATE assignment SET state = 'submitted', finished_at = now() WHERE id = %(assignment_id)s
), counted AS (
    UPDATE comparison
    SET submitted_count = submitted_count + 1,
        active_count = active_count - %(was_active)s,
        status = CASE WHEN submitted_count + 1 >= overlap_target THEN 'complete' ELSE status END
    WHERE id = %(comparison_id)s
)
SELECT id, created_at FROM ins
"""


def request_hash(assignment_id: int, answer: ShownAnswer) -> str:
    body = {"assignment_id": assignment_id, **asdict(answer)}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Lookup(NamedTuple):
    """A row of LOOKUP_SQL."""

    comparison_id: int
    project_id: int
    shown_order: str
    category_keys: list[str] | None
    existing_id: int | None
    existing_hash: str | None
    existing_assignment: int | None


def _lookup(session: Session, user: Caller, assignment_id: int, key: str) -> Lookup:
    """The assignment (the caller's own, else 'not found') and any annotation already stored
    under this Idempotency-Key, in one round trip."""
    params = {"assignment_id": assignment_id, "user_id": user.id, "key": key}
    found = raw.fetch_one(raw.driver(session), LOOKUP_SQL, params)
    if found is None:
        raw.end_read_only(session)
        raise NotFound(f"assignment {assignment_id} not found")
    return Lookup._make(found)


def submit_annotation(
    *, session: Session, user: Caller, assignment_id: int, answer: ShownAnswer, idempotency_key: str
) -> SubmittedAnnotation:
    if not 1 <= len(idempotency_key) <= MAX_KEY_LENGTH:
        raise InvalidInput(f"the Idempotency-Key must have 1-{MAX_KEY_LENGTH} characters", code="bad_key")
    digest = request_hash(assignment_id, answer)
    found = _lookup(session, user, assignment_id, idempotency_key)
    if found.existing_id is not None:
        raw.end_read_only(session)
        return _replay(
            session, user=user, annotation_id=found.existing_id, stored=found.existing_hash, digest=digest
        )
    errors = answer_errors(answer, frozenset(found.category_keys or ()))
    if errors:
        raw.end_read_only(session)
        raise InvalidInput("; ".join(errors), code="invalid_labels")
    was_active = _check_lease(
        session, user=user, assignment_id=assignment_id, found=found, digest=digest, key=idempotency_key
    )
    if isinstance(was_active, SubmittedAnnotation):
        return was_active
    return _store(session, user, assignment_id, answer, found, idempotency_key, digest, was_active)


def _store(
    session: Session,
    user: Caller,
    assignment_id: int,
    answer: ShownAnswer,
    found: Lookup,
    key: str,
    digest: str,
    was_active: int,
) -> SubmittedAnnotation:
    order = ShownOrder(found.shown_order)
    canonical = to_canonical(answer, order)
    params = _write_params(found, user, assignment_id, answer, canonical, order, key, digest, was_active)
    try:
        row = raw.fetch_one(raw.driver(session), WRITE_SQL, params)
    except psycopg.IntegrityError:
        # The key was used concurrently for another assignment: report it like a sequential reuse.
        session.rollback()
        again = _lookup(session, user, assignment_id, key)
        if again.existing_id is not None:
            raw.end_read_only(session)
            return _replay(
                session, user=user, annotation_id=again.existing_id, stored=again.existing_hash, digest=digest
            )
        raise
    assert row is not None  # the INSERT returns its row
    session.commit()
    annotation_id, created_at = row
    return SubmittedAnnotation(
        id=annotation_id,
        assignment_id=assignment_id,
        comparison_id=found.comparison_id,
        project_id=found.project_id,
        answer=answer,
        canonical=canonical,
        shown_order=order,
        warnings=consistency_warnings(answer),
        created_at=created_at,
    )


LOCK_SQL: LiteralString = (
    "SELECT status, submitted_count, active_count, overlap_target FROM comparison WHERE id = %(c)s FOR UPDATE"
)
# A statement of its own, after the lock: under READ COMMITTED a new statement sees everything
# committed before it started, including whatever the lock just waited for, whereas a subquery of
# the locking statement would read the assignment from that statement's older snapshot.
STATE_SQL: LiteralString = "SELECT state FROM assignment WHERE id = %(a)s"


def _check_lease(
    session: Session, *, user: Caller, assignment_id: int, found: Lookup, digest: str, key: str
) -> int | SubmittedAnnotation:
    """Lock the comparison, then read the assignment fresh; 1 if it held a live lease, 0 if its
    lease was reclaimed but there is still room. Raises (after releasing the lease) otherwise."""
    conn = raw.driver(session)
    locked = raw.fetch_one(conn, LOCK_SQL, {"c": found.comparison_id})
    fresh = raw.fetch_one(conn, STATE_SQL, {"a": assignment_id})
    assert locked is not None and fresh is not None  # both rows exist: the lookup just found them
    status, submitted_count, active_count, overlap_target = locked
    state = AssignmentState(fresh[0])
    if state is AssignmentState.submitted:
        return _already_submitted(session, user=user, assignment_id=assignment_id, digest=digest, key=key)
    if state is AssignmentState.skipped:
        raw.end_read_only(session)
        raise Conflict("you skipped this pair; it went back to the pool", code="assignment_skipped")
    if status == "retired":
        _release_if_live(session, state, assignment_id, found.comparison_id)
        raise Conflict("this pair was withdrawn by an admin; load the next one", code="comparison_retired")
    if state is AssignmentState.expired:
        if submitted_count + active_count < overlap_target:
            return 0  # the lease ran out but nobody needed the slot: the answer still counts
        raw.end_read_only(session)
        raise Conflict(
            "your lease on this pair expired and it was given to another annotator; load the next pair",
            code="lease_expired",
        )
    if submitted_count >= overlap_target:  # k was lowered below what was already in
        _release_if_live(session, state, assignment_id, found.comparison_id)
        raise Conflict("this pair already has all the annotations it needs", code="overlap_reached")
    return 1


def _release_if_live(
    session: Session, state: AssignmentState, assignment_id: int, comparison_id: int
) -> None:
    if state is AssignmentState.active:
        release_lease(session, assignment_id=assignment_id, comparison_id=comparison_id, state="expired")
        session.commit()
    else:
        raw.end_read_only(session)


def _already_submitted(
    session: Session, *, user: Caller, assignment_id: int, digest: str, key: str
) -> SubmittedAnnotation:
    row = session.execute(
        text("SELECT id, idempotency_key, request_hash FROM annotation WHERE assignment_id = :a"),
        {"a": assignment_id},
    ).one()
    raw.end_read_only(session)
    if row.idempotency_key == key:
        # A retry that raced its own original: replay it.
        return _replay(session, user=user, annotation_id=row.id, stored=row.request_hash, digest=digest)
    raise Conflict("this pair was already submitted", code="already_submitted")


def _replay(
    session: Session, *, user: Caller, annotation_id: int, stored: str | None, digest: str
) -> SubmittedAnnotation:
    if stored != digest:
        raise InvalidInput(
            "this Idempotency-Key was already used with a different request body",
            code="idempotency_key_reused",
        )
    annotation = get_own_annotation(session=session, user=user, annotation_id=annotation_id)
    raw.end_read_only(session)
    return dataclasses.replace(annotation, replayed=True)


def _write_params(
    found: Lookup,
    user: Caller,
    assignment_id: int,
    answer: ShownAnswer,
    canonical: CanonicalAnswer,
    order: ShownOrder,
    key: str,
    digest: str,
    was_active: int,
) -> dict[str, Any]:
    return {
        "comparison_id": found.comparison_id,
        "user_id": user.id,
        "assignment_id": assignment_id,
        "a_is_safe": canonical.a.is_safe,
        "a_harm_categories": list(canonical.a.harm_categories),
        "a_severity": canonical.a.severity,
        "b_is_safe": canonical.b.is_safe,
        "b_harm_categories": list(canonical.b.harm_categories),
        "b_severity": canonical.b.severity,
        "helpfulness": canonical.helpfulness.value,
        "harmlessness": canonical.harmlessness.value,
        "confidence": answer.confidence,
        "rationale": answer.rationale,
        "time_spent_ms": answer.time_spent_ms,
        "shown_order": order.value,
        "key": key,
        "request_hash": digest,
        "was_active": was_active,
    }
