"""Login through the real form: argon2id hashes, server-side sessions, CSRF, rate limits."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.db.models import User, UserSession
from backend.domain.enums import UserRole
from tests.factories import login, login_form_token, make_user


def test_password_is_stored_as_argon2id(db_session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session, role=UserRole.admin)
    stored = db_session.scalar(select(User.password_hash).where(User.id == user.id))
    assert stored.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in stored


def test_login_sets_httponly_samesite_session_cookie_and_redirects_by_role(
    client: TestClient, db_session
) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session, role=UserRole.admin)
    response = login(client, user.email)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("saferlhf_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert client.get("/api/v1/me").json()["email"] == user.email


def test_session_id_is_stored_only_as_a_hash(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session)
    response = login(client, user.email)
    raw = response.cookies.get("saferlhf_session") or client.cookies.get("saferlhf_session")
    stored = db_session.scalars(select(UserSession.session_hash).where(UserSession.user_id == user.id)).all()
    assert raw and raw not in stored and len(stored) == 1


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(
    client: TestClient, db_session
) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session)
    wrong = login(client, user.email, "not-the-password")
    unknown = login(client, "nobody@example.test", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong e-mail or password" in wrong.text and "Wrong e-mail or password" in unknown.text


def test_login_form_without_its_csrf_token_is_rejected(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session)
    client.get("/login")
    response = client.post(
        "/login", data={"email": user.email, "password": "correct-horse-battery", "csrf_token": "forged"}
    )
    assert response.status_code == 403
    assert client.get("/api/v1/me").status_code == 401


def test_repeated_failures_are_rate_limited_with_retry_after(
    client: TestClient, db_session, settings
) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session)
    statuses = [
        login(client, user.email, f"wrong-{i}-password").status_code
        for i in range(settings.login_max_attempts + 2)
    ]
    assert statuses[: settings.login_max_attempts] == [401] * settings.login_max_attempts
    assert statuses[-1] == 429
    limited = login(client, user.email)  # even the right password waits out the window
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_logout_revokes_the_session_server_side(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session)
    login(client, user.email)
    me = client.get("/api/v1/me")
    assert me.status_code == 200
    page = client.get("/admin/system")  # any page with the logout form carries the CSRF token
    assert page.status_code == 403  # annotators may not see it...
    record = db_session.scalar(select(UserSession).where(UserSession.user_id == user.id))
    response = client.post("/logout", data={"csrf_token": record.csrf_token})
    assert response.status_code == 303
    db_session.refresh(record)
    assert record.revoked_at is not None
    assert client.get("/api/v1/me").status_code == 401


def test_logout_without_csrf_token_is_forbidden(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session)
    login(client, user.email)
    assert client.post("/logout").status_code == 403
    assert client.get("/api/v1/me").status_code == 200


def test_login_page_renders_with_csp_and_no_inline_script(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert "<script>" not in page.text
    assert login_form_token(page.text)


def test_open_redirect_through_next_is_refused(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(db_session)
    page = client.get("/login?next=https://evil.example/")
    token = login_form_token(page.text)
    response = client.post(
        "/login",
        data={
            "email": user.email,
            "password": "correct-horse-battery",
            "csrf_token": token,
            "next": "//evil.example/",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/") and "evil" not in response.headers["location"]
