"""The queue's rules at the service level: leases, overlap, skip, priority, gold, late submits."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import select, text

from backend.db.models import Annotation, Assignment, Comparison
from backend.domain.enums import AssignmentState, ComparisonStatus, UserRole
from backend.domain.errors import Conflict, InvalidInput, NotFound
from backend.services.assignments import claim_next, get_assignment, skip_assignment
from backend.services.submissions import submit_annotation
from tests.factories import make_user
from tests.factories.annotation import answer, make_comparisons, make_project, unsafe


@pytest.fixture
def world(db_session):  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    annotators = [make_user(db_session) for _ in range(4)]
    project = make_project(db_session, admin, members=annotators, gold_rate=0.0)
    return admin, annotators, project


def expire_lease(db_session, assignment_id: int) -> None:  # type: ignore[no-untyped-def]
    """Move a lease's expiry into the past (the database clock decides expiry)."""
    db_session.execute(
        text("UPDATE assignment SET expires_at = now() - interval '1 second' WHERE id = :a"),
        {"a": assignment_id},
    )
    db_session.commit()


def test_claim_twice_resumes_the_same_lease(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (ann, *_), project = world
    make_comparisons(db_session, project, 3)
    first = claim_next(session=db_session, user=ann, project_id=project.id)
    second = claim_next(session=db_session, user=ann, project_id=project.id)
    assert first is not None and second is not None
    assert first.assignment_id == second.assignment_id
    assert first.shown_order == second.shown_order


def test_claim_honours_priority_then_age(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (ann, *_), project = world
    low = make_comparisons(db_session, project, 1, priority=0.0)[0]
    high = make_comparisons(db_session, project, 1, priority=5.0)[0]
    task = claim_next(session=db_session, user=ann, project_id=project.id)
    assert task is not None and task.comparison_id == high.id
    submit_annotation(
        session=db_session, user=ann, assignment_id=task.assignment_id, answer=answer(), idempotency_key="k1"
    )
    task = claim_next(session=db_session, user=ann, project_id=project.id)
    assert task is not None and task.comparison_id == low.id


def test_shown_order_is_random_per_assignment_and_texts_follow_it(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, annotators, project = world
    comps = make_comparisons(db_session, project, 10, overlap=4)
    orders = set()
    for ann in annotators:
        for _ in comps:
            task = claim_next(session=db_session, user=ann, project_id=project.id)
            assert task is not None
            orders.add(task.shown_order.value)
            comp = db_session.get(Comparison, task.comparison_id)
            a_text, b_text = comp.response_a.text, comp.response_b.text
            assert (task.left, task.right) == (
                (a_text, b_text) if task.shown_order.value == "ab" else (b_text, a_text)
            )
            skip_assignment(session=db_session, user=ann, assignment_id=task.assignment_id)
    assert orders == {"ab", "ba"}


def test_an_annotator_never_gets_the_same_comparison_twice(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (ann, *_), project = world
    make_comparisons(db_session, project, 3, overlap=3)
    seen = []
    while (task := claim_next(session=db_session, user=ann, project_id=project.id)) is not None:
        seen.append(task.comparison_id)
        if len(seen) % 2:
            skip_assignment(session=db_session, user=ann, assignment_id=task.assignment_id)
        else:
            submit_annotation(
                session=db_session,
                user=ann,
                assignment_id=task.assignment_id,
                answer=answer(),
                idempotency_key=f"k{len(seen)}",
            )
    assert len(seen) == len(set(seen)) == 3


def test_overlap_k_is_never_exceeded_and_full_comparisons_complete(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, annotators, project = world
    (comp,) = make_comparisons(db_session, project, 1, overlap=2)
    got = [claim_next(session=db_session, user=a, project_id=project.id) for a in annotators]
    assert sum(t is not None for t in got) == 2
    for i, task in enumerate(t for t in got if t is not None):
        submit_annotation(
            session=db_session,
            user=annotators[i],
            assignment_id=task.assignment_id,
            answer=answer(),
            idempotency_key="k",
        )
    db_session.refresh(comp)
    assert (comp.submitted_count, comp.active_count, comp.status) == (2, 0, ComparisonStatus.complete)


def test_skip_returns_the_item_to_the_pool_for_others(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (a1, a2, *_), project = world
    (comp,) = make_comparisons(db_session, project, 1, overlap=1)
    task = claim_next(session=db_session, user=a1, project_id=project.id)
    assert claim_next(session=db_session, user=a2, project_id=project.id) is None
    skipped = skip_assignment(session=db_session, user=a1, assignment_id=task.assignment_id)
    assert skipped.state is AssignmentState.skipped
    assert (
        skip_assignment(session=db_session, user=a1, assignment_id=task.assignment_id).state
        is AssignmentState.skipped
    )
    other = claim_next(session=db_session, user=a2, project_id=project.id)
    assert other is not None and other.comparison_id == comp.id
    assert claim_next(session=db_session, user=a1, project_id=project.id) is None


def test_expired_lease_is_reclaimed_and_late_submit_gets_409(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (a1, a2, *_), project = world
    make_comparisons(db_session, project, 1, overlap=1)
    mine = claim_next(session=db_session, user=a1, project_id=project.id)
    expire_lease(db_session, mine.assignment_id)
    theirs = claim_next(session=db_session, user=a2, project_id=project.id)
    assert theirs is not None and theirs.comparison_id == mine.comparison_id
    assert (
        get_assignment(session=db_session, user=a1, assignment_id=mine.assignment_id).state
        is AssignmentState.expired
    )
    with pytest.raises(Conflict) as late:
        submit_annotation(
            session=db_session,
            user=a1,
            assignment_id=mine.assignment_id,
            answer=answer(),
            idempotency_key="x",
        )
    assert late.value.code == "lease_expired"
    submit_annotation(
        session=db_session, user=a2, assignment_id=theirs.assignment_id, answer=answer(), idempotency_key="y"
    )


def test_expired_lease_nobody_needed_is_still_accepted(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (a1, *_), project = world
    make_comparisons(db_session, project, 1, overlap=1)
    mine = claim_next(session=db_session, user=a1, project_id=project.id)
    expire_lease(db_session, mine.assignment_id)
    done = submit_annotation(
        session=db_session, user=a1, assignment_id=mine.assignment_id, answer=answer(), idempotency_key="x"
    )
    assert done.comparison_id == mine.comparison_id


def test_lowering_k_below_submitted_rejects_further_submits(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (a1, a2, a3, _), project = world
    (comp,) = make_comparisons(db_session, project, 1, overlap=3)
    t1, t2 = (claim_next(session=db_session, user=u, project_id=project.id) for u in (a1, a2))
    submit_annotation(
        session=db_session, user=a1, assignment_id=t1.assignment_id, answer=answer(), idempotency_key="1"
    )
    comp.overlap_target = 1
    db_session.commit()
    with pytest.raises(Conflict) as full:
        submit_annotation(
            session=db_session, user=a2, assignment_id=t2.assignment_id, answer=answer(), idempotency_key="2"
        )
    assert full.value.code == "overlap_reached"
    assert claim_next(session=db_session, user=a3, project_id=project.id) is None
    db_session.refresh(comp)
    assert (comp.submitted_count, comp.active_count) == (1, 0)


def test_same_key_same_body_replays_and_different_body_is_422(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (a1, *_), project = world
    make_comparisons(db_session, project, 2)
    task = claim_next(session=db_session, user=a1, project_id=project.id)
    first = submit_annotation(
        session=db_session, user=a1, assignment_id=task.assignment_id, answer=answer(), idempotency_key="same"
    )
    again = submit_annotation(
        session=db_session, user=a1, assignment_id=task.assignment_id, answer=answer(), idempotency_key="same"
    )
    assert again.replayed and again.id == first.id
    with pytest.raises(InvalidInput) as reused:
        submit_annotation(
            session=db_session,
            user=a1,
            assignment_id=task.assignment_id,
            answer=answer(helpful="right"),
            idempotency_key="same",
        )
    assert reused.value.code == "idempotency_key_reused"
    with pytest.raises(Conflict):
        submit_annotation(
            session=db_session,
            user=a1,
            assignment_id=task.assignment_id,
            answer=answer(),
            idempotency_key="new",
        )
    count = db_session.scalar(select(Annotation.id).where(Annotation.annotator_id == a1.id).limit(2))
    assert count is not None


def test_categories_on_a_safe_response_are_refused(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (a1, *_), project = world
    make_comparisons(db_session, project, 1)
    task = claim_next(session=db_session, user=a1, project_id=project.id)
    from backend.domain.labels import ResponseLabel

    bad = answer(left=ResponseLabel(is_safe=True, harm_categories=("violence",)))
    with pytest.raises(InvalidInput, match="marked safe"):
        submit_annotation(
            session=db_session, user=a1, assignment_id=task.assignment_id, answer=bad, idempotency_key="k"
        )
    with pytest.raises(InvalidInput, match="at least one harm category"):
        submit_annotation(
            session=db_session,
            user=a1,
            assignment_id=task.assignment_id,
            answer=answer(left=ResponseLabel(is_safe=False, severity=2)),
            idempotency_key="k",
        )


def test_unsafe_judged_more_harmless_than_safe_is_warned(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (a1, *_), project = world
    make_comparisons(db_session, project, 1)
    task = claim_next(session=db_session, user=a1, project_id=project.id)
    done = submit_annotation(
        session=db_session,
        user=a1,
        assignment_id=task.assignment_id,
        answer=answer(left=unsafe(), harmless="left"),
        idempotency_key="k",
    )
    assert [w.code for w in done.warnings] == ["unsafe_judged_more_harmless"]


def test_non_members_cannot_claim_and_others_assignments_are_not_found(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (a1, *_), project = world
    make_comparisons(db_session, project, 1)
    outsider = make_user(db_session)
    with pytest.raises(NotFound):
        claim_next(session=db_session, user=outsider, project_id=project.id)
    task = claim_next(session=db_session, user=a1, project_id=project.id)
    with pytest.raises(NotFound):
        get_assignment(session=db_session, user=outsider, assignment_id=task.assignment_id)
    with pytest.raises(NotFound):
        skip_assignment(session=db_session, user=outsider, assignment_id=task.assignment_id)


def test_gold_items_are_served_at_the_project_rate(db_session, world) -> None:  # type: ignore[no-untyped-def]
    admin, (a1, *_), _ = world
    project = make_project(db_session, admin, members=[a1], gold_rate=0.25)
    make_comparisons(db_session, project, 40, overlap=1)
    gold = {"helpfulness": "a", "harmlessness": "a", "a_is_safe": True, "b_is_safe": True}
    make_comparisons(db_session, project, 40, overlap=100, gold_labels=gold)
    rng = random.Random(7)
    served = []
    for i in range(40):
        task = claim_next(session=db_session, user=a1, project_id=project.id, rng=rng)
        served.append(db_session.get(Comparison, task.comparison_id).is_gold)
        submit_annotation(
            session=db_session,
            user=a1,
            assignment_id=task.assignment_id,
            answer=answer(),
            idempotency_key=f"g{i}",
        )
    assert 4 <= sum(served) <= 18
    assert db_session.scalar(select(Assignment.id).where(Assignment.annotator_id == a1.id).limit(1))


def test_an_expired_lease_nobody_needed_is_renewed_when_its_holder_claims_again(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (a1, *_), project = world
    make_comparisons(db_session, project, 2, overlap=1)
    mine = claim_next(session=db_session, user=a1, project_id=project.id)
    expire_lease(db_session, mine.assignment_id)
    again = claim_next(session=db_session, user=a1, project_id=project.id)
    assert again is not None and again.assignment_id == mine.assignment_id
    # Renewed for a full lease again (the expired one ended a second before the database's now).
    assert again.expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)


def test_a_held_lease_on_a_pair_that_filled_up_is_released_on_the_next_claim(db_session, world) -> None:  # type: ignore[no-untyped-def]
    _, (a1, a2, *_), project = world
    (comp, other) = make_comparisons(db_session, project, 2, overlap=2)
    t1 = claim_next(session=db_session, user=a1, project_id=project.id)
    claim_next(session=db_session, user=a2, project_id=project.id)
    submit_annotation(
        session=db_session, user=a2, assignment_id=t1.assignment_id + 1, answer=answer(), idempotency_key="x"
    )
    comp.overlap_target = 1  # a2's vote filled it; a1's lease can no longer be submitted
    db_session.commit()
    nxt = claim_next(session=db_session, user=a1, project_id=project.id)
    assert nxt is not None and nxt.comparison_id == other.id
    assert (
        get_assignment(session=db_session, user=a1, assignment_id=t1.assignment_id).state
        is AssignmentState.expired
    )
    db_session.refresh(comp)
    assert comp.active_count == 0
