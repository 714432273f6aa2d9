"""Property test of the annotation queue (docs/design/reliability.md A7): random programs of claim, submit,
skip, lease expiry and overlap changes, run by 2 to 32 threads at once on a real Postgres.

Whatever the interleaving, afterwards:

* every acknowledged submit is stored, and nothing else is;
* no annotator has two annotations of one comparison, and each comparison's counters match its
  rows (submitted_count = annotations, active_count = live leases);
* no comparison holds more annotations than its overlap allowed: at most the final k, or the count
  it already had when an admin lowered k below it (the Label Studio known issue);
* every annotation belongs to a submitted assignment of the same annotator and comparison.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend.db.models import Project, User
from backend.domain.enums import UserRole
from backend.domain.errors import Conflict
from backend.services.assignments import claim_next, skip_assignment
from backend.services.comparisons import ComparisonChanges, update_comparison
from backend.services.submissions import submit_annotation
from tests.factories import make_user
from tests.factories.annotation import answer, make_comparisons, make_project
from tests.support.queue_invariants import assert_queue_invariants

pytestmark = pytest.mark.timeout(300)

MAX_THREADS = 32
OPS = ("claim", "submit", "submit", "skip", "expire", "change_k")


@dataclass
class People:
    admin_id: int
    annotator_ids: list[int]


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: set[int] = field(default_factory=set)
    k_changes: dict[int, list[int]] = field(default_factory=dict)  # comparison -> counts when lowered
    errors: list[BaseException] = field(default_factory=list)


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    made = create_engine(database_url, pool_size=MAX_THREADS + 4, max_overflow=0)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def people(engine: Engine) -> People:
    """One admin and 32 annotators for every example (password hashing is slow on purpose)."""
    with Session(engine, expire_on_commit=False) as session:
        admin = make_user(session, role=UserRole.admin)
        annotators = [make_user(session) for _ in range(MAX_THREADS)]
        session.commit()
        return People(admin.id, [a.id for a in annotators])


def run_program(
    factory: sessionmaker[Session],
    *,
    user_id: int,
    admin_id: int,
    project_id: int,
    comparison_ids: list[int],
    ops: list[str],
    seed: int,
    start: threading.Barrier,
    ledger: Ledger,
) -> None:
    rng = random.Random(seed)
    try:
        with factory() as session:
            user = session.get(User, user_id)
            admin = session.get(User, admin_id)
            assert user is not None and admin is not None
            start.wait(timeout=60)
            held: int | None = None  # the assignment this thread believes it holds
            for op in ops:
                held = step(session, op, rng, user, admin, project_id, comparison_ids, held, ledger)
    except BaseException as exc:  # reported by the test, with the thread's program
        ledger.errors.append(exc)


def step(
    session: Session,
    op: str,
    rng: random.Random,
    user: User,
    admin: User,
    project_id: int,
    comparison_ids: list[int],
    held: int | None,
    ledger: Ledger,
) -> int | None:
    if op == "claim":
        task = claim_next(session=session, user=user, project_id=project_id, rng=rng)
        return None if task is None else task.assignment_id
    if op == "change_k":
        cid = rng.choice(comparison_ids)
        new_k = rng.randint(1, 4)
        changed = update_comparison(
            session=session, actor=admin, comparison_id=cid, changes=ComparisonChanges(overlap_target=new_k)
        )
        count_after = changed.submitted_count  # read after the commit: >= the count at the change
        with ledger.lock:
            ledger.k_changes.setdefault(cid, []).append(count_after)
        return held
    if held is None:
        return None
    try:
        if op == "submit":
            key = uuid.uuid4().hex
            stored = submit_annotation(
                session=session, user=user, assignment_id=held, answer=answer(), idempotency_key=key
            )
            with ledger.lock:
                ledger.acked.add(stored.id)
            return None
        if op == "skip":
            skip_assignment(session=session, user=user, assignment_id=held)
            return None
        if op == "expire":
            session.execute(
                text("UPDATE assignment SET expires_at = now() - interval '1 second' WHERE id = :a"),
                {"a": held},
            )
            session.commit()
            return held  # an expired lease may still be submitted while nobody else took the slot
    except Conflict:
        session.rollback()  # lease lost, comparison full, already skipped: the queue said no
        return None
    raise AssertionError(f"unknown op {op}")


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    threads=st.integers(2, MAX_THREADS),
    comparisons=st.integers(1, 6),
    overlap=st.integers(1, 3),
    programs=st.lists(
        st.lists(st.sampled_from(OPS), min_size=1, max_size=12), min_size=MAX_THREADS, max_size=MAX_THREADS
    ),
    seed=st.integers(0, 2**31),
)
def test_random_interleavings_keep_the_queue_invariants(
    engine: Engine,
    people: People,
    threads: int,
    comparisons: int,
    overlap: int,
    programs: list[list[str]],
    seed: int,
) -> None:
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        admin = session.get(User, people.admin_id)
        members = [m for i in people.annotator_ids[:threads] if (m := session.get(User, i)) is not None]
        assert admin is not None and len(members) == threads
        project: Project = make_project(session, admin, members=members, gold_rate=0.0, lease_seconds=60)
        made = make_comparisons(session, project, comparisons, overlap=overlap)
        session.commit()
        project_id, comparison_ids = project.id, [c.id for c in made]

    ledger = Ledger()
    start = threading.Barrier(threads)
    workers = [
        threading.Thread(
            target=run_program,
            kwargs={
                "factory": factory,
                "user_id": people.annotator_ids[i],
                "admin_id": people.admin_id,
                "project_id": project_id,
                "comparison_ids": comparison_ids,
                "ops": ["claim", *programs[i]],
                "seed": seed + i,
                "start": start,
                "ledger": ledger,
            },
        )
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(w.is_alive() for w in workers), "a thread hung (a lock that is never released?)"
    assert not ledger.errors, repr(ledger.errors[0])

    def allowed(row) -> int:  # type: ignore[no-untyped-def]
        # Once k changed, a count above the final k is allowed only if it was reached before k was
        # lowered under it (submits accepted before the change are not undone).
        return max([row.overlap_target, *ledger.k_changes.get(row.id, [])])

    with engine.connect() as db:
        assert_queue_invariants(db, project_id, ledger.acked, allowed)
