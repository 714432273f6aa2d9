"""API tokens (C7), user management, projects with the default taxonomy, members."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from backend.db.models import ApiToken
from backend.domain.enums import UserRole
from backend.domain.taxonomy import BEAVERTAILS
from tests.factories import login, make_user
from tests.factories.annotation import csrf_of, make_project, token_headers


def test_token_is_shown_once_and_only_its_hash_is_stored(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session)
    login(client, user.email)
    csrf = csrf_of(db_session, user)
    created = client.post(
        "/api/v1/tokens", json={"name": "laptop", "scopes": ["annotate"]}, headers={"X-CSRF-Token": csrf}
    )
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("srlhf_") and len(secret) > 40
    listed = client.get("/api/v1/tokens").json()
    assert "token" not in listed[0] and listed[0]["prefix"] == secret[:12]
    dump = db_session.execute(text("SELECT row_to_json(t)::text FROM api_token t")).scalars().all()
    assert not any(secret in row for row in dump)
    stored = db_session.scalar(select(ApiToken.token_hash).where(ApiToken.id == created.json()["id"]))
    assert len(stored) == 64 and stored != secret


def test_revoked_token_stops_working_on_the_next_request(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session)
    headers = token_headers(db_session, user)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    token_id = client.get("/api/v1/tokens", headers=headers).json()[0]["id"]
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=headers).status_code == 204
    refused = client.get("/api/v1/me", headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "bad_token"


def test_tokens_cannot_carry_scopes_beyond_the_role(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session)
    headers = token_headers(db_session, user)
    response = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["admin"]}, headers=headers)
    assert response.status_code == 422 and response.json()["code"] == "invalid_scope"


def test_an_annotator_cannot_revoke_someone_elses_token(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_user(db_session), make_user(db_session)
    bob_headers = token_headers(db_session, bob)
    bob_token = client.get("/api/v1/tokens", headers=bob_headers).json()[0]["id"]
    response = client.delete(f"/api/v1/tokens/{bob_token}", headers=token_headers(db_session, alice))
    assert response.status_code == 404
    assert client.get("/api/v1/me", headers=bob_headers).status_code == 200


def test_admin_creates_users_with_a_generated_password_shown_once(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    headers = token_headers(db_session, admin)
    created = client.post("/api/v1/users", json={"email": "New.Person@Example.test"}, headers=headers)
    assert created.status_code == 201
    body = created.json()
    assert body["email"] == "new.person@example.test" and len(body["generated_password"]) >= 12
    again = client.get(f"/api/v1/users/{body['id']}", headers=headers).json()
    assert "generated_password" not in again
    duplicate = client.post("/api/v1/users", json={"email": "new.person@example.test"}, headers=headers)
    assert duplicate.status_code == 409


def test_the_last_active_admin_cannot_be_demoted(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    db_session.execute(text("UPDATE \"user\" SET is_active = false WHERE role = 'admin'"))
    admin = make_user(db_session, role=UserRole.admin)
    headers = token_headers(db_session, admin)
    response = client.patch(f"/api/v1/users/{admin.id}", json={"role": "annotator"}, headers=headers)
    assert response.status_code == 409 and response.json()["code"] == "last_admin"


def test_deactivated_users_lose_their_tokens_and_sessions(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    user = make_user(db_session)
    user_headers = token_headers(db_session, user)
    response = client.patch(
        f"/api/v1/users/{user.id}", json={"is_active": False}, headers=token_headers(db_session, admin)
    )
    assert response.status_code == 200
    assert client.get("/api/v1/me", headers=user_headers).status_code == 401


def test_new_projects_get_the_14_beavertails_categories_and_four_severities(
    client: TestClient, db_session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    headers = token_headers(db_session, admin)
    created = client.post(
        "/api/v1/projects", json={"name": "Round 1", "guidelines_md": "# Be careful"}, headers=headers
    )
    assert created.status_code == 201
    project = created.json()
    assert [c["label"] for c in project["harm_taxonomy"]] == [label for _, label, _ in BEAVERTAILS]
    assert len(project["harm_taxonomy"]) == 14
    assert [(s["level"], s["label"]) for s in project["severity_levels"]] == [
        (0, "safe"),
        (1, "minor"),
        (2, "moderate"),
        (3, "severe"),
    ]
    assert client.post("/api/v1/projects", json={"name": "Round 1"}, headers=headers).status_code == 409


def test_taxonomy_and_policy_are_validated(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    headers = token_headers(db_session, admin)
    project = make_project(db_session, admin)
    bad_key = {"harm_taxonomy": [{"key": "Bad Key!", "label": "x"}]}
    response = client.patch(f"/api/v1/projects/{project.id}", json=bad_key, headers=headers)
    assert response.status_code == 422 and response.json()["code"] == "invalid_taxonomy"
    response = client.patch(f"/api/v1/projects/{project.id}", json={"gold_rate": 1.5}, headers=headers)
    assert response.status_code == 422
    custom = {"harm_taxonomy": [{"key": "spam", "label": "Spam", "description": "Unsolicited ads"}]}
    response = client.patch(f"/api/v1/projects/{project.id}", json=custom, headers=headers)
    assert response.status_code == 200 and response.json()["harm_taxonomy"][0]["key"] == "spam"


def test_annotators_see_only_projects_they_are_members_of(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    alice = make_user(db_session)
    mine = make_project(db_session, admin, members=[alice])
    other = make_project(db_session, admin)
    headers = token_headers(db_session, alice)
    assert [p["id"] for p in client.get("/api/v1/projects", headers=headers).json()] == [mine.id]
    assert client.get(f"/api/v1/projects/{other.id}", headers=headers).status_code == 404
    assert client.post(f"/api/v1/projects/{other.id}/assignments/next", headers=headers).status_code == 404


def test_members_are_added_idempotently_and_removed(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    alice = make_user(db_session)
    project = make_project(db_session, admin)
    headers = token_headers(db_session, admin)
    for _ in range(2):
        assert (
            client.put(f"/api/v1/projects/{project.id}/members/{alice.id}", headers=headers).status_code
            == 204
        )
    assert [
        m["id"] for m in client.get(f"/api/v1/projects/{project.id}/members", headers=headers).json()
    ] == [alice.id]
    assert (
        client.delete(f"/api/v1/projects/{project.id}/members/{alice.id}", headers=headers).status_code == 204
    )
    assert (
        client.delete(f"/api/v1/projects/{project.id}/members/{alice.id}", headers=headers).status_code == 404
    )
