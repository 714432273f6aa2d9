"""Quality control: agreement statistics, gold accuracy (missed vs false alarms), position bias,
reliability-weighted aggregation with ties, the review queue and adjudication."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from backend.domain.enums import Choice, ShownOrder, UserRole
from backend.domain.labels import CanonicalAnswer, ResponseLabel, ShownAnswer, choice_to_position
from backend.services.assignments import claim_next
from backend.services.quality.aggregation import aggregate
from backend.services.quality.agreement import krippendorff_alpha_nominal, percent_agreement
from backend.services.quality.annotators import annotator_stats, reliability_weight
from backend.services.quality.votes import Vote
from backend.services.submissions import submit_annotation
from tests.factories import make_user
from tests.factories.annotation import make_comparisons, make_project, token_headers

SAFE = ResponseLabel(True)
UNSAFE = ResponseLabel(False, ("violence",), 2)


def test_krippendorff_alpha_matches_the_published_nominal_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 coders,
    # 12 units, nominal data; the paper reports alpha = 0.743.
    table = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[row[u] for row in table if row[u] is not None] for u in range(12)]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=0.001)


def test_agreement_edge_cases() -> None:
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert krippendorff_alpha_nominal([["a", "a"], ["a", "a"]]) is None  # no variation: undefined
    assert krippendorff_alpha_nominal([["a"], ["b"]]) is None  # nothing pairable
    assert percent_agreement([["a", "a", "b"], ["x", "y"]]) == pytest.approx(1 / 4)


def vote(
    annotator: int,
    comparison: int,
    helpful: Choice,
    *,
    a: ResponseLabel = SAFE,
    b: ResponseLabel = SAFE,
    harmless: Choice = Choice.a,
    order: ShownOrder = ShownOrder.ab,
    gold: bool = False,
) -> Vote:
    return Vote(
        annotation_id=annotator * 1000 + comparison,
        comparison_id=comparison,
        annotator_id=annotator,
        round_id=None,
        is_gold=gold,
        answer=CanonicalAnswer(a, b, helpful, harmless),
        shown_order=order,
        confidence=None,
        time_spent_ms=1000,
        rationale="",
        created_at=dt.datetime.now(dt.UTC),
    )


def test_missed_unsafe_is_counted_apart_from_false_alarms_per_category() -> None:
    gold = {
        1: {
            "a_is_safe": True,
            "b_is_safe": False,
            "b_harm_categories": ["violence", "self_harm"],
            "helpfulness": "a",
        },
        2: {"a_is_safe": True, "b_is_safe": True, "a_harm_categories": [], "harmlessness": "b"},
    }
    votes = [
        vote(7, 1, Choice.a, b=SAFE, gold=True),  # missed the unsafe response
        vote(7, 2, Choice.b, a=ResponseLabel(False, ("privacy_violation",), 1), harmless=Choice.b, gold=True),
        vote(8, 1, Choice.b, b=ResponseLabel(False, ("violence",), 2), gold=True),
    ]
    stats = annotator_stats(votes, gold)
    careless, careful = stats[7], stats[8]
    assert (careless.missed_unsafe, careless.false_alarm_unsafe) == (1, 1)
    assert careless.categories["privacy_violation"].false_alarms == 1
    assert (careful.missed_unsafe, careful.false_alarm_unsafe) == (0, 0)
    assert careful.categories["violence"].hits == 1 and careful.categories["self_harm"].missed == 1
    assert careless.gold["helpfulness"].rate == 1.0 and careful.gold["helpfulness"].rate == 0.0
    assert careless.gold["harmlessness"].rate == 1.0 and careless.gold["safety"].rate == pytest.approx(0.5)


def test_position_bias_is_flagged_for_an_annotator_who_always_picks_left() -> None:
    votes = []
    for i in range(30):
        order = ShownOrder.ab if i % 2 else ShownOrder.ba
        left = Choice.a if order is ShownOrder.ab else Choice.b
        votes.append(vote(1, i, left, harmless=left, order=order))
        votes.append(vote(2, i, Choice.a, harmless=Choice.a, order=order))
    stats = annotator_stats(votes, {})
    assert stats[1].left_rate == 1.0 and stats[1].position_biased
    assert stats[2].left_rate == pytest.approx(0.5) and not stats[2].position_biased


def test_weighted_majority_follows_the_reliable_annotator_and_reports_ties() -> None:
    weights = {1: 2.0, 2: 0.5, 3: 0.5}
    votes = [vote(1, 9, Choice.a), vote(2, 9, Choice.b), vote(3, 9, Choice.b)]
    assert aggregate(9, votes, weights).helpfulness.label is Choice.a
    assert aggregate(9, votes, {}).helpfulness.label is Choice.b  # unweighted majority
    tied = aggregate(9, [vote(1, 9, Choice.a), vote(2, 9, Choice.b)], {})
    assert tied.helpfulness.tie and tied.helpfulness.label is None and "helpfulness" in tied.ties
    safety_tie = aggregate(9, [vote(1, 9, Choice.a, a=UNSAFE), vote(2, 9, Choice.a)], {})
    assert safety_tie.a.tie and not safety_tie.a.is_safe and safety_tie.a.harm_categories == ["violence"]


def test_reliability_weight_grows_with_gold_accuracy_and_is_zero_at_chance() -> None:
    _, low = reliability_weight(1, 10)
    _, prior = reliability_weight(0, 0)
    _, high = reliability_weight(10, 10)
    assert low < prior < high
    assert reliability_weight(0, 1000)[1] == pytest.approx(0.05)  # floor, never negative


@pytest.fixture
def voted(db_session):  # type: ignore[no-untyped-def]
    """Three annotators vote on two pairs; they disagree on the first."""
    admin = make_user(db_session, role=UserRole.admin)
    reviewer = make_user(db_session, role=UserRole.reviewer)
    people = [make_user(db_session) for _ in range(3)]
    project = make_project(db_session, admin, members=[*people, reviewer], gold_rate=0.0)
    first, second = make_comparisons(db_session, project, 2, overlap=3)
    plans = {first.id: [Choice.a, Choice.b, Choice.b], second.id: [Choice.a, Choice.a, Choice.a]}
    for i, person in enumerate(people):
        for n in range(2):
            task = claim_next(session=db_session, user=person, project_id=project.id)
            helpful = plans[task.comparison_id][i]
            answer = ShownAnswer(
                SAFE,
                SAFE,
                choice_to_position(helpful, task.shown_order),
                choice_to_position(Choice.a, task.shown_order),
            )
            submit_annotation(
                session=db_session,
                user=person,
                assignment_id=task.assignment_id,
                answer=answer,
                idempotency_key=f"{n}",
            )
    return project, first, second, admin, reviewer


def test_quality_api_reports_agreement_per_axis_and_annotators(client: TestClient, db_session, voted) -> None:  # type: ignore[no-untyped-def]
    project, _, _, admin, _ = voted
    report = client.get(
        f"/api/v1/projects/{project.id}/quality", headers=token_headers(db_session, admin)
    ).json()
    rows = {(r["round"], r["axis"]): r for r in report["agreement"]}
    helpful = rows[("all", "helpfulness")]
    assert helpful["units"] == 2 and helpful["percent_agreement"] == pytest.approx((1 + 3) / 6)
    assert rows[("all", "harmlessness")]["percent_agreement"] == 1.0
    assert report["disagreements"] == 1 and len(report["annotators"]) == 3
    assert all(a["annotations"] == 2 for a in report["annotators"])


def test_disagreements_reach_the_review_queue_and_adjudication_overrides_votes(
    client: TestClient, db_session, voted
) -> None:  # type: ignore[no-untyped-def]
    project, first, second, _, reviewer = voted
    headers = token_headers(db_session, reviewer)
    queue = client.get(f"/api/v1/projects/{project.id}/review-queue", headers=headers).json()
    assert [item["comparison_id"] for item in queue] == [first.id]
    assert queue[0]["disagreeing"] == ["helpfulness"] and not queue[0]["adjudicated"]
    detail = client.get(f"/api/v1/comparisons/{first.id}", headers=headers).json()
    assert len(detail["votes"]) == 3 and detail["aggregate"]["helpfulness"]["label"] == "b"
    body = {
        "helpfulness": "a",
        "harmlessness": "equal",
        "a": {"is_safe": True},
        "b": {"is_safe": False, "harm_categories": ["violence"], "severity": 3},
        "note": "A answers the question",
    }
    made = client.post(f"/api/v1/comparisons/{first.id}/adjudications", json=body, headers=headers)
    assert made.status_code == 201, made.text
    labels = client.get(f"/api/v1/projects/{project.id}/labels", headers=headers).json()["items"]
    adjudicated = next(item for item in labels if item["comparison_id"] == first.id)
    assert adjudicated["adjudicated"] and adjudicated["helpfulness"]["label"] == "a"
    assert adjudicated["b"]["severity"] == 3 and not adjudicated["b"]["is_safe"]
    assert (
        client.get(f"/api/v1/comparisons/{first.id}", headers=headers).json()["votes"].__len__() == 3
    )  # raw kept
    again = client.get(f"/api/v1/projects/{project.id}/review-queue", headers=headers).json()
    assert again[0]["adjudicated"]


def test_annotators_cannot_read_votes_or_quality(client: TestClient, db_session, voted) -> None:  # type: ignore[no-untyped-def]
    project, first, _, _, _ = voted
    annotator = make_user(db_session)
    headers = token_headers(db_session, annotator)
    assert client.get(f"/api/v1/projects/{project.id}/quality", headers=headers).status_code == 403
    assert client.get(f"/api/v1/comparisons/{first.id}", headers=headers).status_code == 403
