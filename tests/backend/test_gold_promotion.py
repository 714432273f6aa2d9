"""A comparison that becomes gold after review is served to the annotators who have not answered it,
at the project's gold rate; clearing gold makes it ordinary, decided work again (docs/rounds.md,
gold_rate; backend/services/comparisons.py, `open_as_gold`)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from backend.db.models import Comparison, Project, User
from backend.domain.enums import Choice, ComparisonStatus, UserRole
from backend.domain.labels import CanonicalAnswer
from backend.services.assignments import claim_next
from backend.services.comparisons import set_gold
from backend.services.imports import GOLD_OVERLAP
from backend.services.projects import add_member
from backend.services.quality.review import adjudicate
from backend.services.rounds.gold import open_gold_items
from backend.services.submissions import submit_annotation
from tests.factories import make_user
from tests.factories.annotation import SAFE, answer, make_comparisons, make_project

GOLD = {"helpfulness": "a", "harmlessness": "a", "a_is_safe": True, "b_is_safe": True}


@pytest.fixture
def reviewed(db_session):  # type: ignore[no-untyped-def]
    """Two annotators have answered one pair (overlap 2, so it is complete); a third has not, and
    there is ordinary work left for everyone. The project serves gold at a rate of 0.5."""
    admin = make_user(db_session, role=UserRole.admin)
    first, second, newcomer = (make_user(db_session) for _ in range(3))
    project = make_project(db_session, admin, members=[first, second, newcomer], gold_rate=0.5)
    (pair,) = make_comparisons(db_session, project, 1, overlap=2, priority=10.0)
    for n, person in enumerate((first, second)):
        task = claim_next(session=db_session, user=person, project_id=project.id)
        assert task is not None and task.comparison_id == pair.id
        submit_annotation(
            session=db_session,
            user=person,
            assignment_id=task.assignment_id,
            answer=answer(),
            idempotency_key=f"r{n}",
        )
    make_comparisons(db_session, project, 30, overlap=3)
    db_session.refresh(pair)
    assert pair.status is ComparisonStatus.complete and pair.submitted_count == 2
    return admin, (first, second, newcomer), project, pair


def served_to(db_session, user: User, project: Project, claims: int, seed: int = 11) -> list[int]:  # type: ignore[no-untyped-def]
    """The comparisons `claims` successive claims serve `user` (each answered), with a seeded draw."""
    rng = random.Random(seed)
    served = []
    for n in range(claims):
        task = claim_next(session=db_session, user=user, project_id=project.id, rng=rng)
        if task is None:
            break
        served.append(task.comparison_id)
        submit_annotation(
            session=db_session,
            user=user,
            assignment_id=task.assignment_id,
            answer=answer(),
            idempotency_key=f"{user.id}-{seed}-{n}",
        )
    return served


def assert_gold_room(pair: Comparison) -> None:
    assert pair.is_gold and pair.overlap_target == GOLD_OVERLAP and pair.status is ComparisonStatus.open


def test_a_pair_marked_gold_after_review_is_served_to_an_annotator_who_has_not_answered_it(
    db_session, reviewed
) -> None:  # type: ignore[no-untyped-def]
    admin, (first, _, newcomer), project, pair = reviewed
    set_gold(session=db_session, actor=admin, project=project, comparison=pair, labels=GOLD)
    db_session.refresh(pair)
    assert_gold_room(pair)
    assert pair.id in served_to(db_session, newcomer, project, claims=10)
    # Who already answered it is never shown it again, gold or not.
    assert pair.id not in served_to(db_session, first, project, claims=10)
    db_session.refresh(pair)
    assert pair.submitted_count == 3 and pair.status is ComparisonStatus.open


def test_a_pair_promoted_to_gold_by_adjudication_is_served(db_session, reviewed) -> None:  # type: ignore[no-untyped-def]
    admin, (_, _, newcomer), project, pair = reviewed
    verdict = CanonicalAnswer(a=SAFE, b=SAFE, helpfulness=Choice.b, harmlessness=Choice.equal)
    adjudicate(session=db_session, reviewer=admin, comparison=pair, answer=verdict, promote_to_gold=True)
    db_session.refresh(pair)
    assert_gold_room(pair)
    assert pair.gold_labels is not None and pair.gold_labels["helpfulness"] == "b"
    assert pair.id in served_to(db_session, newcomer, project, claims=10)


def test_clearing_gold_restores_the_overlap_it_had_and_leaves_it_decided(db_session, reviewed) -> None:  # type: ignore[no-untyped-def]
    admin, (_, _, newcomer), project, pair = reviewed
    latecomer = make_user(db_session)
    add_member(session=db_session, actor=admin, project=project, user_id=latecomer.id)
    set_gold(session=db_session, actor=admin, project=project, comparison=pair, labels=GOLD)
    set_gold(session=db_session, actor=admin, project=project, comparison=pair, labels=GOLD)  # labels edited
    assert pair.id in served_to(db_session, newcomer, project, claims=10)  # a third annotation, as gold
    set_gold(session=db_session, actor=admin, project=project, comparison=pair, labels=None)
    db_session.refresh(pair)
    # The overlap recorded when it became gold (2, not the project's default of 3), and complete.
    assert not pair.is_gold and pair.gold_labels is None
    assert pair.overlap_target == 2 and pair.submitted_count == 3 and pair.status is ComparisonStatus.complete
    served = served_to(db_session, latecomer, project, claims=40)
    assert len(served) == 30 and pair.id not in served  # all the ordinary work, never this pair


def test_clearing_an_imported_gold_item_gives_it_the_project_overlap(db_session) -> None:  # type: ignore[no-untyped-def]
    """An imported gold item never had another overlap: it goes to the project's default, and is
    complete when it already has that many annotations, open when it has fewer."""
    admin = make_user(db_session, role=UserRole.admin)
    people: Sequence[User] = [make_user(db_session) for _ in range(3)]
    project = make_project(db_session, admin, members=people, gold_rate=1.0, default_overlap=2)
    answered, fresh = make_comparisons(db_session, project, 2, overlap=GOLD_OVERLAP, gold_labels=GOLD)
    make_comparisons(db_session, project, 1, overlap=3)
    for n, person in enumerate(people[:2]):
        rng = random.Random(n)
        task = claim_next(session=db_session, user=person, project_id=project.id, rng=rng)
        assert task is not None and task.comparison_id == answered.id  # gold first at rate 1
        submit_annotation(
            session=db_session,
            user=person,
            assignment_id=task.assignment_id,
            answer=answer(),
            idempotency_key=f"i{n}",
        )
    for comparison in (answered, fresh):
        set_gold(session=db_session, actor=admin, project=project, comparison=comparison, labels=None)
        db_session.refresh(comparison)
        assert comparison.overlap_target == 2 and not comparison.is_gold
    assert answered.status is ComparisonStatus.complete
    assert fresh.status is ComparisonStatus.open


def test_a_retired_pair_stays_retired_when_it_becomes_gold(db_session, reviewed) -> None:  # type: ignore[no-untyped-def]
    admin, _, project, pair = reviewed
    pair.status = ComparisonStatus.retired
    db_session.commit()
    set_gold(session=db_session, actor=admin, project=project, comparison=pair, labels=GOLD)
    db_session.refresh(pair)
    assert pair.is_gold and pair.status is ComparisonStatus.retired
    set_gold(session=db_session, actor=admin, project=project, comparison=pair, labels=None)
    db_session.refresh(pair)
    assert pair.status is ComparisonStatus.retired and pair.overlap_target == 2


def test_a_round_opens_gold_items_marked_before_promotion_gave_them_room(db_session, reviewed) -> None:  # type: ignore[no-untyped-def]
    """Gold items left full by earlier versions (overlap kept, complete) are opened when a round
    with gold starts collecting; retired ones and those with room already are left alone."""
    _, (_, _, newcomer), project, pair = reviewed
    (retired,) = make_comparisons(db_session, project, 1, overlap=1, gold_labels=GOLD)
    pair.is_gold, pair.gold_labels = True, GOLD  # as the old set_gold left it: overlap 2, complete
    retired.overlap_target, retired.status = 1, ComparisonStatus.retired
    db_session.commit()
    assert open_gold_items(db_session, project.id) == 1
    db_session.commit()
    db_session.refresh(pair)
    db_session.refresh(retired)
    assert_gold_room(pair)
    assert retired.status is ComparisonStatus.retired and retired.overlap_target == 1
    assert open_gold_items(db_session, project.id) == 0  # idempotent
    assert pair.id in served_to(db_session, newcomer, project, claims=10)
