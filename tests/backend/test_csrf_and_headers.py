"""CSRF on every unsafe cookie-authenticated route (C3), security headers and static files (C16),
and the pinned Starlette (C10)."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from packaging.version import Version

from backend.domain.enums import UserRole
from tests.factories import login, make_user
from tests.factories.annotation import csrf_of, make_project

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def unsafe_routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    found = []
    for ctx in iter_route_contexts(app.routes):
        for method in sorted((ctx.methods or set()) & UNSAFE):
            path = ctx.path_format or ctx.path
            if (method, path) != ("POST", "/login"):  # public; its double-submit token: test_login.py
                found.append((method, path))
    return found


def test_every_unsafe_route_refuses_a_missing_wrong_or_foreign_csrf_token(
    app, client: TestClient, db_session
) -> None:  # type: ignore[no-untyped-def]
    admin, other = make_user(db_session, role=UserRole.admin), make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin)
    login(client, admin.email)
    own = csrf_of(db_session, admin)
    second = TestClient(app)
    login(second, other.email)
    foreign = csrf_of(db_session, other)
    routes = unsafe_routes(app)
    assert len(routes) > 30
    problems = []
    for method, path in routes:
        url = re.sub(r"\{\w+\}", lambda m: str(project.id) if m.group(0) == "{project_id}" else "1", path)
        for label, token in (("missing", None), ("wrong", "x" * 43), ("foreign", foreign)):
            headers = {"Accept": "application/json"}
            if token:
                headers["X-CSRF-Token"] = token
            data = {"csrf_token": token} if token else {"field": "value"}
            response = client.request(method, url, headers=headers, data=data)
            if response.status_code != 403 or response.json().get("code") != "csrf_failed":
                problems.append(f"{method} {url} with {label} token: {response.status_code}")
    assert not problems, "\n".join(problems)
    assert own != foreign  # and the right token does work:
    ok = client.post(
        "/api/v1/tokens", json={"name": "t", "scopes": ["annotate"]}, headers={"X-CSRF-Token": own}
    )
    assert ok.status_code == 201


def test_bearer_token_calls_need_no_csrf_token(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    from tests.factories.annotation import token_headers

    user = make_user(db_session)
    response = client.post(
        "/api/v1/tokens", json={"name": "t", "scopes": ["annotate"]}, headers=token_headers(db_session, user)
    )
    assert response.status_code == 201


@pytest.mark.parametrize("path", ["/login", "/api/v1/me", "/static/css/app.css"])
def test_security_headers_are_on_every_response(client: TestClient, path: str) -> None:
    response = client.get(path)
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def test_hsts_is_sent_when_served_over_https(settings, db_session) -> None:  # type: ignore[no-untyped-def]
    from backend.main import create_app

    app = create_app(settings.model_copy(update={"base_url": "https://rlhf.example"}))
    with TestClient(app) as secure:
        assert "max-age=" in secure.get("/login").headers["strict-transport-security"]
    app.state.engine.dispose()


@pytest.mark.parametrize("path", ["/static/", "/static/css/", "/static/js", "/static/../backend/config.py"])
def test_static_files_have_no_directory_listing_or_escape(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_starlette_is_new_enough_for_the_multipart_fixes() -> None:
    import starlette

    assert Version(starlette.__version__) >= Version("0.47.2")


def test_pages_use_no_inline_scripts_or_styles(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin, members=[admin])
    login(client, admin.email)
    p = project.id
    pages = [
        "/admin",
        f"/admin/projects/{p}",
        f"/admin/projects/{p}/quality",
        "/admin/users",
        "/account/tokens",
    ]
    pages += ["/review", f"/review/projects/{p}", f"/annotate/{p}", "/annotate", "/login"]
    for page in pages:
        html = client.get(page).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page
        assert " style=" not in html and "<style" not in html, page
        assert not re.search(r"\son[a-z]+=", html), page  # no inline event handlers
