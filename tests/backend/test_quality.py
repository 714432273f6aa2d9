"""Quality control: agreement statistics, gold accuracy (missed vs false alarms), position bias,
reliability-weighted aggregation with ties, the review queue and adjudication."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.db.models import Adjudication
from backend.domain.enums import Choice, ShownOrder, UserRole
from backend.domain.labels import CanonicalAnswer, ResponseLabel, ShownAnswer, choice_to_position
from backend.services.assignments import claim_next
from backend.services.quality.aggregation import aggregate
from backend.services.quality.agreement import krippendorff_alpha_nominal, percent_agreement
from backend.services.quality.annotators import annotator_stats, reliability_weight
from backend.services.quality.votes import Vote
from backend.services.submissions import submit_annotation
from tests.factories import login, make_user
from tests.factories.annotation import csrf_of, make_comparisons, make_project, token_headers

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


@pytest.fixture
def unsafe_disagreements(db_session):  # type: ignore[no-untyped-def]
    """Three pairs whose annotators disagree on helpfulness and all call response B unsafe, so the
    adjudication form of each comes prefilled with B unsafe, a category and a severity."""
    admin = make_user(db_session, role=UserRole.admin)
    reviewer = make_user(db_session, role=UserRole.reviewer)
    people = [make_user(db_session) for _ in range(2)]
    project = make_project(db_session, admin, members=[*people, reviewer], gold_rate=0.0)
    comparisons = make_comparisons(db_session, project, 3, overlap=2)
    for i, person in enumerate(people):
        for n in range(3):
            task = claim_next(session=db_session, user=person, project_id=project.id)
            a, b = (SAFE, UNSAFE)
            left, right = (a, b) if task.shown_order is ShownOrder.ab else (b, a)
            helpful = choice_to_position(Choice.a if i == 0 else Choice.b, task.shown_order)
            answer = ShownAnswer(left, right, helpful, choice_to_position(Choice.a, task.shown_order))
            submit_annotation(
                session=db_session,
                user=person,
                assignment_id=task.assignment_id,
                answer=answer,
                idempotency_key=f"{n}",
            )
    return project, comparisons, reviewer


def adjudication_form(csrf: str) -> dict[str, object]:
    """What the prefilled form sends when the reviewer only switches B to Safe: B's leftover
    category and severity are still in it (no JavaScript to clear them)."""
    return {
        "csrf_token": csrf,
        "a_safety": "safe",
        "b_safety": "safe",
        "b_categories": ["violence"],
        "b_severity": "2",
        "helpfulness": "a",
        "harmlessness": "equal",
    }


def test_a_reviewer_adjudicates_an_unsafe_aggregate_as_safe_and_moves_to_the_next_disagreement(
    client: TestClient, db_session, unsafe_disagreements
) -> None:  # type: ignore[no-untyped-def]
    project, comparisons, reviewer = unsafe_disagreements
    login(client, reviewer.email)
    csrf = csrf_of(db_session, reviewer)
    page = client.get(f"/review/comparisons/{comparisons[0].id}")
    assert 'name="b_severity" value="2" checked' in page.text  # prefilled from the unsafe aggregate
    visited, url = [], f"/review/comparisons/{comparisons[0].id}"
    for _ in comparisons:
        comparison_id = int(url.split("/")[-1].split("?")[0])
        visited.append(comparison_id)
        saved = client.post(f"/review/comparisons/{comparison_id}/adjudicate", data=adjudication_form(csrf))
        assert saved.status_code == 303, saved.text
        url = saved.headers["location"]
        latest = db_session.scalars(
            select(Adjudication).where(Adjudication.comparison_id == comparison_id).order_by(Adjudication.id)
        ).all()[-1]
        assert (latest.b_is_safe, latest.b_harm_categories, latest.b_severity) == (True, [], 0)
        if len(visited) < len(comparisons):
            assert url.endswith("?notice=adjudicated_next") and "/review/comparisons/" in url
    assert sorted(visited) == sorted(c.id for c in comparisons)  # each open one once, none twice
    assert url == f"/review/projects/{project.id}?notice=review_done"
    assert "No open disagreements are left" in client.get(url).text


def test_a_safe_verdict_over_the_api_drops_leftover_categories_and_severity(
    client: TestClient, db_session, unsafe_disagreements
) -> None:  # type: ignore[no-untyped-def]
    _, comparisons, reviewer = unsafe_disagreements
    body = {
        "helpfulness": "a",
        "harmlessness": "a",
        "a": {"is_safe": True},
        "b": {"is_safe": True, "harm_categories": ["violence"], "severity": 2},
    }
    made = client.post(
        f"/api/v1/comparisons/{comparisons[0].id}/adjudications",
        json=body,
        headers=token_headers(db_session, reviewer),
    )
    assert made.status_code == 201, made.text
    assert made.json()["b"] == {"is_safe": True, "harm_categories": [], "severity": 0}
