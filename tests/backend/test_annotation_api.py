"""The annotator's REST API: claim, submit (idempotent), skip, own annotations, progress."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from backend.db.models import Annotation, Assignment
from backend.domain.enums import UserRole
from tests.factories import make_user
from tests.factories.annotation import answer_json, make_comparisons, make_project, token_headers


@pytest.fixture
def setup(db_session):  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    alice, bob = make_user(db_session), make_user(db_session)
    project = make_project(db_session, admin, members=[alice, bob], gold_rate=0.0)
    make_comparisons(db_session, project, 3, overlap=2)
    return project, token_headers(db_session, alice), token_headers(db_session, bob), alice


def claim(client: TestClient, project_id: int, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/projects/{project_id}/assignments/next", headers=headers)


def submit(client: TestClient, assignment: int, headers: dict[str, str], key: str | None, **kw):  # type: ignore[no-untyped-def]
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(
        f"/api/v1/assignments/{assignment}/submit", json=answer_json(**kw), headers={**headers, **extra}
    )


def test_claim_returns_the_pair_in_shown_order_without_hidden_fields(client: TestClient, setup) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, _ = setup
    task = claim(client, project.id, alice)
    assert task.status_code == 200
    body = task.json()
    assert set(body) == {
        "assignment_id",
        "comparison_id",
        "project_id",
        "lease_token",
        "state",
        "expires_at",
        "prompt",
        "left",
        "right",
    }
    assert "gold" not in task.text and "shown_order" not in body


def test_submit_twice_with_same_key_stores_one_annotation_and_replays(
    client: TestClient, setup, db_session
) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, user = setup
    task = claim(client, project.id, alice).json()
    first = submit(client, task["assignment_id"], alice, "key-1")
    again = submit(client, task["assignment_id"], alice, "key-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    count = db_session.scalar(
        select(func.count()).select_from(Annotation).where(Annotation.annotator_id == user.id)
    )
    assert count == 1


def test_same_key_with_a_different_body_is_422(client: TestClient, setup) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, _ = setup
    task = claim(client, project.id, alice).json()
    assert submit(client, task["assignment_id"], alice, "k").status_code == 201
    changed = submit(client, task["assignment_id"], alice, "k", helpful="right")
    assert changed.status_code == 422 and changed.json()["code"] == "idempotency_key_reused"


def test_submit_without_idempotency_key_is_400(client: TestClient, setup) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, _ = setup
    task = claim(client, project.id, alice).json()
    response = submit(client, task["assignment_id"], alice, None)
    assert response.status_code == 400 and response.json()["code"] == "key_required"


def test_a_second_submit_with_a_new_key_is_409_already_submitted(client: TestClient, setup) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, _ = setup
    task = claim(client, project.id, alice).json()
    submit(client, task["assignment_id"], alice, "a")
    again = submit(client, task["assignment_id"], alice, "b")
    assert again.status_code == 409 and again.json()["code"] == "already_submitted"


def test_late_submit_after_the_lease_went_to_someone_else_is_a_clear_409(
    client: TestClient, setup, db_session
) -> None:  # type: ignore[no-untyped-def]
    project, alice, bob, _ = setup
    db_session.execute(
        text("UPDATE comparison SET overlap_target = 1 WHERE project_id = :p"), {"p": project.id}
    )
    db_session.commit()
    mine = claim(client, project.id, alice).json()
    db_session.execute(
        text("UPDATE assignment SET expires_at = now() - interval '1 minute' WHERE id = :a"),
        {"a": mine["assignment_id"]},
    )
    db_session.commit()
    for _ in range(3):  # bob takes every pair, including alice's expired one
        theirs = claim(client, project.id, bob).json()
        assert submit(client, theirs["assignment_id"], bob, f"b{theirs['assignment_id']}").status_code == 201
    late = submit(client, mine["assignment_id"], alice, "late")
    assert late.status_code == 409
    assert late.json()["code"] == "lease_expired" and "another annotator" in late.json()["detail"]


def test_invalid_labels_are_422_with_a_readable_reason(client: TestClient, setup) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, _ = setup
    task = claim(client, project.id, alice).json()
    body = answer_json()
    body["left"] = {"is_safe": True, "harm_categories": ["violence"]}
    response = client.post(
        f"/api/v1/assignments/{task['assignment_id']}/submit",
        json=body,
        headers={**alice, "Idempotency-Key": "x"},
    )
    assert response.status_code == 422 and "marked safe" in response.json()["detail"]
    body["left"] = {"is_safe": False, "harm_categories": ["not_a_category"], "severity": 1}
    response = client.post(
        f"/api/v1/assignments/{task['assignment_id']}/submit",
        json=body,
        headers={**alice, "Idempotency-Key": "y"},
    )
    assert response.status_code == 422 and "unknown harm categories" in response.json()["detail"]


def test_unknown_fields_in_the_body_are_rejected(client: TestClient, setup) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, _ = setup
    task = claim(client, project.id, alice).json()
    body = {**answer_json(), "helpfullness": "left"}
    response = client.post(
        f"/api/v1/assignments/{task['assignment_id']}/submit",
        json=body,
        headers={**alice, "Idempotency-Key": "x"},
    )
    assert response.status_code == 422


def test_skip_then_claim_gives_another_pair_and_the_skipped_one_goes_to_others(
    client: TestClient, setup
) -> None:  # type: ignore[no-untyped-def]
    project, alice, bob, _ = setup
    first = claim(client, project.id, alice).json()
    skipped = client.post(f"/api/v1/assignments/{first['assignment_id']}/skip", headers=alice)
    assert skipped.status_code == 200 and skipped.json()["state"] == "skipped"
    second = claim(client, project.id, alice).json()
    assert second["comparison_id"] != first["comparison_id"]
    # The skipped pair is the oldest with room again, so it is the next one anyone else gets.
    assert claim(client, project.id, bob).json()["comparison_id"] == first["comparison_id"]
    late_submit = submit(client, first["assignment_id"], alice, "z")
    assert late_submit.status_code == 409 and late_submit.json()["code"] == "assignment_skipped"


def test_no_work_left_is_204(client: TestClient, setup) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, _ = setup
    for i in range(3):
        task = claim(client, project.id, alice).json()
        submit(client, task["assignment_id"], alice, f"k{i}")
    assert claim(client, project.id, alice).status_code == 204


def test_annotators_read_only_their_own_annotations(client: TestClient, setup) -> None:  # type: ignore[no-untyped-def]
    project, alice, bob, _ = setup
    task = claim(client, project.id, alice).json()
    mine = submit(client, task["assignment_id"], alice, "k").json()
    assert [a["id"] for a in client.get("/api/v1/annotations", headers=alice).json()] == [mine["id"]]
    assert client.get("/api/v1/annotations", headers=bob).json() == []
    assert client.get(f"/api/v1/annotations/{mine['id']}", headers=bob).status_code == 404
    assert client.get(f"/api/v1/assignments/{task['assignment_id']}", headers=bob).status_code == 404


def test_progress_counts_done_and_left(client: TestClient, setup) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, _ = setup
    before = client.get(f"/api/v1/projects/{project.id}/progress", headers=alice).json()
    task = claim(client, project.id, alice).json()
    submit(client, task["assignment_id"], alice, "k")
    after = client.get(f"/api/v1/projects/{project.id}/progress", headers=alice).json()
    assert (before["submitted_by_me"], after["submitted_by_me"]) == (0, 1)
    assert after["submitted_by_me_today"] == 1 and after["available_to_me"] == before["available_to_me"] - 1


def test_a_read_only_token_cannot_claim(client: TestClient, db_session, setup) -> None:  # type: ignore[no-untyped-def]
    project, _, _, _ = setup
    reviewer = make_user(db_session, role=UserRole.reviewer)
    read_only = token_headers(db_session, reviewer, scopes=["read"])
    response = claim(client, project.id, read_only)
    assert response.status_code == 403 and response.json()["code"] == "missing_scope"


def test_lowering_k_through_the_api_completes_the_comparison(client: TestClient, db_session, setup) -> None:  # type: ignore[no-untyped-def]
    project, alice, bob, _ = setup
    admin = make_user(db_session, role=UserRole.admin)
    admin_headers = token_headers(db_session, admin)
    a = claim(client, project.id, alice).json()
    b = claim(client, project.id, bob).json()
    assert a["comparison_id"] == b["comparison_id"]
    submit(client, a["assignment_id"], alice, "a")
    patched = client.patch(
        f"/api/v1/comparisons/{a['comparison_id']}", json={"overlap_target": 1}, headers=admin_headers
    )
    assert patched.status_code == 200 and patched.json()["status"] == "complete"
    refused = submit(client, b["assignment_id"], bob, "b")
    assert refused.status_code == 409 and refused.json()["code"] == "overlap_reached"
    states = db_session.scalars(
        select(Assignment.state).where(Assignment.comparison_id == a["comparison_id"])
    ).all()
    assert sorted(s.value for s in states) == ["expired", "submitted"]


def submit_and_next(client: TestClient, assignment: int, headers: dict[str, str], key: str, **kw):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/assignments/{assignment}/submit-and-next",
        json=answer_json(**kw),
        headers={**headers, "Idempotency-Key": key},
    )


def test_submit_and_next_stores_the_answer_and_leases_the_following_pair(
    client: TestClient, setup, db_session
) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, user = setup
    task = claim(client, project.id, alice).json()
    response = submit_and_next(client, task["assignment_id"], alice, "sn-1")
    assert response.status_code == 201
    body = response.json()
    assert body["annotation"]["assignment_id"] == task["assignment_id"]
    following = body["next"]
    assert following["comparison_id"] != task["comparison_id"]
    live = db_session.scalars(
        select(Assignment.id).where(Assignment.annotator_id == user.id, Assignment.state == "active")
    ).all()
    assert live == [following["assignment_id"]]


def test_submit_and_next_replay_returns_the_same_annotation_and_the_pair_now_held(
    client: TestClient, setup, db_session
) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, user = setup
    task = claim(client, project.id, alice).json()
    first = submit_and_next(client, task["assignment_id"], alice, "sn-2")
    again = submit_and_next(client, task["assignment_id"], alice, "sn-2")
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["annotation"] == first.json()["annotation"]
    assert again.json()["next"]["assignment_id"] == first.json()["next"]["assignment_id"]
    count = db_session.scalar(
        select(func.count()).select_from(Annotation).where(Annotation.annotator_id == user.id)
    )
    assert count == 1


def test_submit_and_next_ends_with_null_when_nothing_is_left(client: TestClient, setup) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, _ = setup
    task = claim(client, project.id, alice).json()
    seen = []
    while task is not None:
        seen.append(task["comparison_id"])
        task = submit_and_next(client, task["assignment_id"], alice, f"sn-end-{len(seen)}").json()["next"]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 3


def test_a_failed_submit_and_next_claims_nothing(client: TestClient, setup, db_session) -> None:  # type: ignore[no-untyped-def]
    project, alice, _, user = setup
    task = claim(client, project.id, alice).json()
    assert submit_and_next(client, task["assignment_id"], alice, "sn-ok").status_code == 201
    refused = submit_and_next(client, task["assignment_id"], alice, "sn-other-key")
    assert refused.status_code == 409
    assert set(refused.json()) == {"detail", "code"}
    held = db_session.scalar(
        select(func.count()).select_from(Assignment).where(Assignment.annotator_id == user.id)
    )
    assert held == 2  # the first pair and the one leased by the successful call, nothing more
