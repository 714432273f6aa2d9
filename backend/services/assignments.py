"""The annotation queue: claim the next comparison under a lease, resume it, skip it.

Invariants (docs/design/reliability.md A1, A2, A7, A8), all enforced while holding the comparison's row lock:

* `submitted_count + active_count <= overlap_target` whenever a lease is granted, where
  `active_count` counts live leases. Counters live on the comparison row, so a claim checks
  them on the row it has locked instead of counting assignments under a stale snapshot.
* Lock order is always comparison, then assignment (claim, skip, submit, lease renewal), so
  these paths cannot deadlock each other.
* An annotator never gets the same comparison twice: unique (comparison, annotator).
* One live lease per annotator and project (a partial unique index): claiming again resumes it.
* An expired lease stays its holder's until someone else needs the slot; a claim that needs it
  reclaims it (state expired) in the same statement that grants the new lease.

The claim itself is one statement: pick the best open comparison with room, `FOR UPDATE SKIP
LOCKED` so concurrent claimers never wait on each other, reclaim stale leases on it when it is
full, bump the counter and insert the assignment, returning the texts to show.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from typing import Any, LiteralString, NamedTuple

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from backend.db import raw
from backend.domain.caller import Caller
from backend.domain.enums import AssignmentState, ShownOrder, UserRole
from backend.domain.errors import Conflict, NotFound

CLAIM_ATTEMPTS = 3

CLAIM_SQL_TEMPLATE: LiteralString = """
WITH cand AS (
    SELECT c.id, c.submitted_count, c.active_count, c.overlap_target
    FROM comparison c
    WHERE c.project_id = %(project_id)s AND c.status = 'open' AND c.is_gold = %(gold)s
      AND c.submitted_count < c.overlap_target
      AND (c.submitted_count + c.active_count < c.overlap_target
           OR c.submitted_count + c.active_count - (
                SELECT count(*) FROM assignment s
                WHERE s.comparison_id = c.id AND s.state = 'active' AND s.expires_at <= now()
              ) < c.overlap_target)
      AND NOT EXISTS (
            SELECT 1 FROM assignment mine WHERE mine.comparison_id = c.id AND mine.annotator_id = %(user_id)s)
    ORDER BY c.priority DESC, c.id
    LIMIT 1
    FOR UPDATE OF c {lock_mode}
),
reclaimed AS (
    UPDATE assignment s SET state = 'expired', finished_at = now()
    FROM cand
    WHERE s.comparison_id = cand.id AND s.state = 'active' AND s.expires_at <= now()
      AND cand.submitted_count + cand.active_count >= cand.overlap_target
    RETURNING s.id
),
decision AS (
    SELECT cand.id, r.n,
           cand.submitted_count + cand.active_count - r.n < cand.overlap_target AS granted
    FROM cand, (SELECT count(*) AS n FROM reclaimed) r
),
bump AS (
    UPDATE comparison c
    SET active_count = c.active_count - d.n + CASE WHEN d.granted THEN 1 ELSE 0 END
    FROM decision d
    WHERE c.id = d.id
    RETURNING c.id, c.prompt_id, c.response_a_id, c.response_b_id, d.granted
),
ins AS (
    INSERT INTO assignment
        (comparison_id, annotator_id, project_id, lease_token, leased_at, expires_at, state, shown_order)
    SELECT bump.id, %(user_id)s, %(project_id)s, %(token)s, now(),
           now() + make_interval(secs => %(lease_seconds)s), 'active', CAST(%(shown_order)s AS shown_order)
    FROM bump WHERE bump.granted
    RETURNING id, comparison_id, lease_token, leased_at, expires_at, shown_order
)
SELECT ins.id, ins.comparison_id, ins.lease_token, ins.leased_at, ins.expires_at, ins.shown_order,
       p.text AS prompt, ra.text AS text_a, rb.text AS text_b
FROM ins
JOIN bump ON bump.id = ins.comparison_id
JOIN prompt p ON p.id = bump.prompt_id
JOIN response ra ON ra.id = bump.response_a_id
JOIN response rb ON rb.id = bump.response_b_id
"""
# Concurrent claimers skip rows another one holds. When the pool still has candidates but every
# one was locked, the last attempt waits for a lock instead, so a busy pool is never reported as
# empty (Label Studio #4190's "no more tasks" while tasks were merely locked).
CLAIM_SQL = CLAIM_SQL_TEMPLATE.format(lock_mode="SKIP LOCKED")
CLAIM_SQL_WAITING = CLAIM_SQL_TEMPLATE.format(lock_mode="")

# Project policy, membership and the caller's live lease (with its texts) in one round trip.
CONTEXT_SQL: LiteralString = """
SELECT p.gold_rate, p.lease_seconds,
       EXISTS (SELECT 1 FROM project_member m
               WHERE m.project_id = p.id AND m.user_id = %(user_id)s) AS member,
       a.id, a.comparison_id, a.lease_token, a.leased_at, a.expires_at, a.shown_order,
       a.expires_at <= now() AS expired,
       c.status = 'open' AND c.submitted_count < c.overlap_target AS acceptable,
       pr.text AS prompt, ra.text AS text_a, rb.text AS text_b
FROM project p
LEFT JOIN assignment a ON a.project_id = p.id AND a.annotator_id = %(user_id)s AND a.state = 'active'
LEFT JOIN comparison c ON c.id = a.comparison_id
LEFT JOIN prompt pr ON pr.id = c.prompt_id
LEFT JOIN response ra ON ra.id = c.response_a_id
LEFT JOIN response rb ON rb.id = c.response_b_id
WHERE p.id = %(project_id)s
"""

TASK_SQL = text(
    """
SELECT a.id, a.comparison_id, a.project_id, a.lease_token, a.leased_at, a.expires_at, a.shown_order,
       a.state, pr.text AS prompt, ra.text AS text_a, rb.text AS text_b
FROM assignment a
JOIN comparison c ON c.id = a.comparison_id
JOIN prompt pr ON pr.id = c.prompt_id
JOIN response ra ON ra.id = c.response_a_id
JOIN response rb ON rb.id = c.response_b_id
WHERE a.id = :assignment_id AND a.annotator_id = :user_id
"""
)


@dataclass(frozen=True)
class Task:
    """A leased comparison as the annotator sees it: the two responses in the shown order."""

    assignment_id: int
    comparison_id: int
    project_id: int
    lease_token: str
    leased_at: dt.datetime
    expires_at: dt.datetime
    shown_order: ShownOrder
    state: AssignmentState
    prompt: str
    left: str
    right: str


def _task(row: object, project_id: int, state: AssignmentState = AssignmentState.active) -> Task:
    order = ShownOrder(row.shown_order)  # type: ignore[attr-defined]
    a, b = row.text_a, row.text_b  # type: ignore[attr-defined]
    return Task(
        assignment_id=row.id,  # type: ignore[attr-defined]
        comparison_id=row.comparison_id,  # type: ignore[attr-defined]
        project_id=project_id,
        lease_token=row.lease_token,  # type: ignore[attr-defined]
        leased_at=row.leased_at,  # type: ignore[attr-defined]
        expires_at=row.expires_at,  # type: ignore[attr-defined]
        shown_order=order,
        state=state,
        prompt=row.prompt,  # type: ignore[attr-defined]
        left=a if order is ShownOrder.ab else b,
        right=b if order is ShownOrder.ab else a,
    )


class Context(NamedTuple):
    """A row of CONTEXT_SQL: the project's policy, membership, and the caller's live lease."""

    gold_rate: float
    lease_seconds: int
    member: bool
    id: int | None
    comparison_id: int | None
    lease_token: str | None
    leased_at: dt.datetime | None
    expires_at: dt.datetime | None
    shown_order: str | None
    expired: bool | None
    acceptable: bool | None
    prompt: str | None
    text_a: str | None
    text_b: str | None


class Leased(NamedTuple):
    """A row of CLAIM_SQL: the lease just granted, with the texts to show."""

    id: int
    comparison_id: int
    lease_token: str
    leased_at: dt.datetime
    expires_at: dt.datetime
    shown_order: str
    prompt: str
    text_a: str
    text_b: str


def claim_next(
    *, session: Session, user: Caller, project_id: int, rng: random.Random | None = None
) -> Task | None:
    """The caller's live lease in this project, or a new one; None when no work is left for them."""
    rng = rng or random.SystemRandom()
    found = raw.fetch_one(raw.driver(session), CONTEXT_SQL, {"user_id": user.id, "project_id": project_id})
    if found is None:
        raw.end_read_only(session)
        raise NotFound(f"project {project_id} not found")
    ctx = Context._make(found)
    if not (ctx.member or user.role is UserRole.admin):
        raw.end_read_only(session)
        raise NotFound(f"project {project_id} not found")
    if ctx.id is not None:
        if not ctx.expired and ctx.acceptable:
            raw.end_read_only(session)
            return _task(ctx, project_id)
        resumed = _revalidate_own_lease(session, user=user, ctx=ctx, project_id=project_id)
        if resumed is not None:
            return resumed
    gold_first = ctx.gold_rate > 0 and rng.random() < ctx.gold_rate
    # Gold items are served at the project's rate only: when ordinary work runs out, the
    # annotator is done rather than left answering nothing but hidden checks.
    pools = (True, False) if gold_first else (False,)
    for gold in pools:
        task = _claim_from_pool(session, user=user, project_id=project_id, gold=gold, ctx=ctx, rng=rng)
        if task is not None:
            return task
    session.commit()
    return None


def _claim_from_pool(
    session: Session, *, user: Caller, project_id: int, gold: bool, ctx: Context, rng: random.Random
) -> Task | None:
    for attempt in range(CLAIM_ATTEMPTS):
        statement = CLAIM_SQL if attempt < CLAIM_ATTEMPTS - 1 else CLAIM_SQL_WAITING
        params: dict[str, Any] = {
            "project_id": project_id,
            "user_id": user.id,
            "gold": gold,
            "token": str(uuid.uuid4()),
            "lease_seconds": int(ctx.lease_seconds),
            "shown_order": rng.choice((ShownOrder.ab.value, ShownOrder.ba.value)),
        }
        try:
            row = raw.fetch_one(raw.driver(session), statement, params)
        except psycopg.IntegrityError:
            # The same annotator claimed concurrently (another tab or client): theirs stands.
            session.rollback()
            return get_task(session=session, user=user, project_id=project_id)
        if row is not None:
            session.commit()
            return _task(Leased._make(row), project_id)
        if not _had_candidate(session, project_id=project_id, user_id=user.id, gold=gold):
            return None
    return None


def _had_candidate(session: Session, *, project_id: int, user_id: int, gold: bool) -> bool:
    """After an empty claim: was a candidate lost to a race (retry) or is the pool empty (stop)?"""
    found = session.execute(
        text(
            "SELECT 1 FROM comparison c WHERE c.project_id = :p AND c.status = 'open' AND c.is_gold = :g "
            "AND c.submitted_count + c.active_count < c.overlap_target AND NOT EXISTS (SELECT 1 FROM "
            "assignment mine WHERE mine.comparison_id = c.id AND mine.annotator_id = :u) LIMIT 1"
        ),
        {"p": project_id, "g": gold, "u": user_id},
    ).first()
    return found is not None


def _revalidate_own_lease(session: Session, *, user: Caller, ctx: Context, project_id: int) -> Task | None:
    """The caller's lease ran out or its comparison filled up: renew it if nobody needed the slot,
    release it otherwise. Locks the comparison first (see the module docstring)."""
    comparison_id, assignment_id = ctx.comparison_id, ctx.id
    assert comparison_id is not None and assignment_id is not None  # the caller holds this lease
    comp = session.execute(
        text(
            "SELECT status = 'open' AND submitted_count < overlap_target AS acceptable "
            "FROM comparison WHERE id = :c FOR UPDATE"
        ),
        {"c": comparison_id},
    ).one()
    state = session.scalar(text("SELECT state FROM assignment WHERE id = :a"), {"a": assignment_id})
    if state != AssignmentState.active.value:
        session.commit()
        return None
    if comp.acceptable:
        session.execute(
            text("UPDATE assignment SET expires_at = now() + make_interval(secs => :s) WHERE id = :a"),
            {"s": int(ctx.lease_seconds), "a": assignment_id},
        )
        session.commit()
        return get_task(session=session, user=user, project_id=project_id)
    release_lease(session, assignment_id=assignment_id, comparison_id=comparison_id, state="expired")
    session.commit()
    return None


def release_lease(session: Session, *, assignment_id: int, comparison_id: int, state: str) -> None:
    """End a live lease and give its slot back. The caller holds the comparison's lock."""
    session.execute(
        text("UPDATE assignment SET state = CAST(:s AS assignment_state), finished_at = now() WHERE id = :a"),
        {"s": state, "a": assignment_id},
    )
    session.execute(
        text("UPDATE comparison SET active_count = active_count - 1 WHERE id = :c"), {"c": comparison_id}
    )


def get_task(*, session: Session, user: Caller, project_id: int) -> Task | None:
    """The caller's live lease in a project, without claiming anything."""
    row = session.execute(
        text(
            TASK_SQL.text.replace(
                "WHERE a.id = :assignment_id AND a.annotator_id = :user_id",
                "WHERE a.project_id = :project_id AND a.annotator_id = :user_id AND a.state = 'active'",
            )
        ),
        {"project_id": project_id, "user_id": user.id},
    ).first()
    session.commit()
    return None if row is None else _task(row, project_id)


def get_assignment(*, session: Session, user: Caller, assignment_id: int) -> Task:
    """One of the caller's own assignments (any state). Other people's are 'not found'."""
    row = session.execute(TASK_SQL, {"assignment_id": assignment_id, "user_id": user.id}).first()
    if row is None:
        raise NotFound(f"assignment {assignment_id} not found")
    return _task(row, row.project_id, AssignmentState(row.state))


def skip_assignment(*, session: Session, user: Caller, assignment_id: int) -> Task:
    """Give the comparison back to the pool; this annotator will not be offered it again.
    Skipping twice is harmless; skipping a submitted one is a conflict."""
    row = session.execute(
        text("SELECT comparison_id FROM assignment WHERE id = :a AND annotator_id = :u"),
        {"a": assignment_id, "u": user.id},
    ).first()
    if row is None:
        raise NotFound(f"assignment {assignment_id} not found")
    session.execute(text("SELECT id FROM comparison WHERE id = :c FOR UPDATE"), {"c": row.comparison_id})
    state = AssignmentState(
        session.scalar(text("SELECT state FROM assignment WHERE id = :a"), {"a": assignment_id})
    )
    if state is AssignmentState.submitted:
        session.rollback()
        raise Conflict("this pair was already submitted and cannot be skipped", code="already_submitted")
    if state is AssignmentState.active:
        release_lease(session, assignment_id=assignment_id, comparison_id=row.comparison_id, state="skipped")
    elif state is AssignmentState.expired:
        # Nothing to give back (the slot was already released), but record the decision.
        session.execute(
            text("UPDATE assignment SET state = 'skipped', finished_at = now() WHERE id = :a"),
            {"a": assignment_id},
        )
    session.commit()
    return get_assignment(session=session, user=user, assignment_id=assignment_id)
