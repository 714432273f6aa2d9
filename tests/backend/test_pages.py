"""Server-rendered pages: imported text is escaped everywhere (C13), and the forms work without
JavaScript: 303 on success, 422 with a message and the entered values kept on error."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.db.models import Annotation, Project
from backend.domain.enums import UserRole
from backend.services.assignments import claim_next
from backend.services.submissions import submit_annotation
from backend.services.users import create_user
from tests.factories import DEFAULT_PASSWORD, login, make_user
from tests.factories.annotation import answer, csrf_of, make_project

PAYLOADS = ["<script>alert('p')</script>", '"><img src=x onerror=alert(1)>', "{{7*7}}"]


def pku_row(i: int) -> dict[str, object]:
    return {
        "prompt": f"{PAYLOADS[0]} prompt {i} {PAYLOADS[2]}",
        "response_0": f"{PAYLOADS[1]} zero {i}",
        "response_1": f"<b>bold</b> one {i} {PAYLOADS[0]}",
    }


def assert_escaped(html: str) -> None:
    for payload in PAYLOADS[:2]:
        assert payload not in html, f"unescaped: {payload}"
    assert "&lt;script&gt;alert(" in html
    assert "{{7*7}}" in html  # user text is never evaluated as a template


@pytest.fixture
def hostile(client: TestClient, db_session):  # type: ignore[no-untyped-def]
    """A project whose imported texts, guidelines and annotator names carry XSS payloads."""
    admin = make_user(db_session, role=UserRole.admin)
    evil = create_user(session=db_session, email="evil@example.test", password=DEFAULT_PASSWORD,
                       role=UserRole.annotator, display_name=PAYLOADS[1])  # fmt: skip
    other = make_user(db_session)
    guidelines = f"Read carefully.\n\n{PAYLOADS[0]}\n\n[x](javascript:alert(1))"
    project = make_project(db_session, admin, members=[evil, other], gold_rate=0.0, guidelines_md=guidelines)
    login(client, admin.email)
    data = "".join(json.dumps(pku_row(i)) + "\n" for i in range(2)).encode()
    csrf = csrf_of(db_session, admin)
    response = client.post(
        f"/admin/projects/{project.id}/imports",
        files={"file": (f"{PAYLOADS[1]}.jsonl", data)},
        data={"kind": "pku_saferlhf", "csrf_token": csrf, "overlap": "2"},
    )
    assert response.status_code == 303, response.text
    for person in (evil, other):
        task = claim_next(session=db_session, user=person, project_id=project.id)
        submit_annotation(
            session=db_session, user=person, assignment_id=task.assignment_id, answer=answer(helpful="left"),
            idempotency_key="k",
        )  # fmt: skip
    return project, admin, evil, response.headers["location"]


def test_xss_payloads_in_imported_data_render_escaped_on_every_page(
    client: TestClient, db_session, hostile
) -> None:  # type: ignore[no-untyped-def]
    project, admin, evil, report_url = hostile
    comparison_id = db_session.scalar(
        select(Annotation.comparison_id).where(Annotation.annotator_id == evil.id).limit(1)
    )
    p = project.id
    admin_pages = [f"/admin/projects/{p}", report_url, f"/admin/projects/{p}/quality", "/admin/users"]
    admin_pages += [f"/review/comparisons/{comparison_id}", f"/review/projects/{p}"]
    for page in admin_pages:
        html = client.get(page).text
        assert PAYLOADS[1] not in html, page
        assert "<script>alert" not in html, page
    assert_escaped(client.get(f"/review/comparisons/{comparison_id}").text)
    annotator = TestClient(client.app, follow_redirects=False)
    login(annotator, evil.email)
    annotator.post(f"/annotate/{project.id}/next", data={"csrf_token": csrf_of(db_session, evil)})
    workspace = annotator.get(f"/annotate/{project.id}").text
    assert_escaped(workspace)
    guidelines = workspace.split('id="guidelines"')[1].split("</aside>")[0]
    assert "Read carefully." in guidelines
    assert "<script>" not in guidelines and 'href="javascript:' not in guidelines
    assert annotator.get("/api/v1/projects").headers["content-type"].startswith("application/json")


def test_annotating_without_javascript_submits_and_loads_the_next_pair(
    client: TestClient, db_session
) -> None:  # type: ignore[no-untyped-def]
    from tests.factories.annotation import make_comparisons

    admin, person = make_user(db_session, role=UserRole.admin), make_user(db_session)
    project = make_project(db_session, admin, members=[person], gold_rate=0.0)
    make_comparisons(db_session, project, 2)
    login(client, person.email)
    csrf = csrf_of(db_session, person)
    assert (
        client.get("/annotate").headers["location"] == f"/annotate/{project.id}"
    )  # one project: straight in
    page = client.get(f"/annotate/{project.id}")
    assert 'id="empty-state"' in page.text and "Start annotating" in page.text
    assert client.post(f"/annotate/{project.id}/next", data={"csrf_token": csrf}).status_code == 303
    page = client.get(f"/annotate/{project.id}").text
    assignment = re.search(r'id="assignment-id" value="(\d+)"', page).group(1)
    form = {
        "csrf_token": csrf,
        "assignment_id": assignment,
        "idempotency_key": "form-1",
        "left_safety": "safe",
    }
    form |= {"right_safety": "unsafe", "right_categories": ["violence", "self_harm"], "right_severity": "3"}
    form |= {"helpfulness": "left"}
    missing = client.post(f"/annotate/{project.id}/submit", data=form)
    assert missing.status_code == 422 and "more harmless" in missing.text
    assert re.search(r'name="right_safety" value="unsafe"[^>]*\s+checked', missing.text)  # answers kept
    assert re.search(r'name="right_categories" value="self_harm"\s+checked', missing.text)
    done = client.post(f"/annotate/{project.id}/submit", data={**form, "harmlessness": "left"})
    assert done.status_code == 303 and "notice=submitted" in done.headers["location"]
    stored = db_session.scalar(select(Annotation).where(Annotation.annotator_id == person.id))
    assert stored is not None and sorted(stored.a_harm_categories + stored.b_harm_categories) == [
        "self_harm",
        "violence",
    ]
    next_page = client.get(done.headers["location"]).text
    assert "Saved." in next_page
    assert re.search(r'id="assignment-id" value="(\d+)"', next_page).group(1) != assignment


def test_admin_creates_a_project_from_the_form_and_sees_errors_with_values_kept(
    client: TestClient, db_session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    login(client, admin.email)
    csrf = csrf_of(db_session, admin)
    bad = client.post("/admin/projects", data={"csrf_token": csrf, "name": "Kept name", "gold_rate": "lots"})
    assert bad.status_code == 422 and "must be a number" in bad.text and 'value="Kept name"' in bad.text
    good = client.post(
        "/admin/projects", data={"csrf_token": csrf, "name": "Form project", "gold_rate": "0.2"}
    )
    assert good.status_code == 303
    project = db_session.scalar(select(Project).where(Project.name == "Form project"))
    assert project.gold_rate == pytest.approx(0.2) and len(project.harm_taxonomy) == 14
    page = client.get(good.headers["location"]).text
    assert "Project created." in page


def test_admin_import_form_reports_rejected_rows_on_the_report_page(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin)
    login(client, admin.email)
    csrf = csrf_of(db_session, admin)
    response = client.post(
        f"/admin/projects/{project.id}/imports",
        files={"file": ("p.jsonl", b'{"prompt": "ok"}\n{"nope": 1}\n')},
        data={"kind": "prompts", "csrf_token": csrf},
    )
    assert response.status_code == 303  # to the report, so that a reload does not upload again
    report = client.get(response.headers["location"]).text
    assert "nothing was imported" in report and "missing prompt text" in report
    no_file = client.post(
        f"/admin/projects/{project.id}/imports", data={"kind": "prompts", "csrf_token": csrf}
    )
    assert no_file.status_code == 422 and "Choose a file" in no_file.text


def test_admin_users_page_shows_a_generated_password_once(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    login(client, admin.email)
    csrf = csrf_of(db_session, admin)
    created = client.post(
        "/admin/users", data={"csrf_token": csrf, "email": "form.user@example.test", "role": "reviewer"}
    )
    assert created.status_code == 201
    secret = re.search(r'<p class="secret">([^<]+)</p>', created.text).group(1)
    assert len(secret) >= 12 and secret not in client.get("/admin/users").text
    duplicate = client.post("/admin/users", data={"csrf_token": csrf, "email": "form.user@example.test"})
    assert duplicate.status_code == 422 and "already exists" in duplicate.text


def test_token_page_shows_the_secret_once_and_revokes(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    person = make_user(db_session)
    login(client, person.email)
    csrf = csrf_of(db_session, person)
    made = client.post("/account/tokens", data={"csrf_token": csrf, "name": "script", "scopes": ["annotate"]})
    assert made.status_code == 201
    secret = re.search(r'<p class="secret">([^<]+)</p>', made.text).group(1)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert secret not in client.get("/account/tokens").text
    token_id = re.search(r"/account/tokens/(\d+)/revoke", made.text).group(1)
    assert client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf}).status_code == 303
    fresh = TestClient(client.app)
    assert fresh.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    count = db_session.scalar(select(func.count()).select_from(Annotation))
    assert count is not None


def test_a_forbidden_page_keeps_the_navigation_of_the_logged_in_user(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    person = create_user(
        session=db_session, email="nav@example.test", password=DEFAULT_PASSWORD, role=UserRole.annotator,
        display_name="Nav Tester",
    )  # fmt: skip
    login(client, person.email)
    page = client.get("/admin", headers={"Accept": "text/html"})
    assert page.status_code == 403 and "Not allowed" in page.text
    nav = page.text.split('<nav class="topnav"')[1].split("</nav>")[0]
    assert 'href="/annotate"' in nav and 'href="/account/tokens"' in nav
    assert 'href="/admin"' not in nav  # the nav of an annotator, not an admin's
    assert "Nav Tester" in page.text and 'action="/logout"' in page.text
    assert f'value="{csrf_of(db_session, person)}"' in page.text  # logging out works from here
    assert 'href="/"' in page.text  # and a way home


def test_a_page_that_does_not_exist_keeps_the_navigation_of_the_logged_in_user(
    client: TestClient, db_session
) -> None:  # type: ignore[no-untyped-def]
    person = make_user(db_session, role=UserRole.reviewer)
    login(client, person.email)
    page = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert page.status_code == 404
    nav = page.text.split('<nav class="topnav"')[1].split("</nav>")[0]
    assert 'href="/review"' in nav and 'href="/account/tokens"' in nav
    assert f'value="{csrf_of(db_session, person)}"' in page.text  # logging out works from here
    anonymous = TestClient(client.app).get("/no/such/page", headers={"Accept": "text/html"})
    assert anonymous.status_code == 404 and 'action="/logout"' not in anonymous.text


def test_a_reviewer_reads_the_quality_page_of_their_project_only(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    admin, reviewer = (
        make_user(db_session, role=UserRole.admin),
        make_user(db_session, role=UserRole.reviewer),
    )
    mine = make_project(db_session, admin, members=[reviewer], gold_rate=0.0)
    other = make_project(db_session, admin, gold_rate=0.0)
    login(client, reviewer.email)
    page = client.get(f"/admin/projects/{mine.id}/quality")
    assert page.status_code == 200 and "Krippendorff" in page.text
    assert f'href="/admin/projects/{mine.id}"' not in page.text  # no links into admin-only pages
    assert f'href="/review/projects/{mine.id}"' in page.text
    assert re.search(r'<a href="/review"\s+aria-current="page"', page.text)  # the reviewer's own section
    assert f'href="/admin/projects/{mine.id}/quality"' in client.get(f"/review/projects/{mine.id}").text
    assert client.get(f"/admin/projects/{other.id}/quality").status_code == 404


def test_a_refused_token_scope_names_the_role_with_the_right_article(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    person = make_user(db_session)
    login(client, person.email)
    refused = client.post(
        "/account/tokens", data={"csrf_token": csrf_of(db_session, person), "name": "s", "scopes": ["read"]}
    )
    assert refused.status_code == 422
    assert "an annotator cannot hold tokens with scope read" in refused.text


def test_disagreement_axes_read_as_words_not_as_column_names() -> None:
    from backend.web.templating import axis_names

    assert axis_names(["helpfulness", "a_is_safe", "b_is_safe"]) == "helpfulness, A safety, B safety"
