"""The admin import form: an option error keeps the choices and the uploaded file for the next try,
every processed file redirects (303) to its report, and the report counts rows truthfully."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.db.models import Comparison, ImportBatch
from backend.domain.enums import UserRole
from tests.conftest import REPO_ROOT
from tests.factories import login, make_user
from tests.factories.annotation import csrf_of, make_project

HH = (REPO_ROOT / "docs" / "examples" / "hh_rlhf_harmless_sample.jsonl").read_bytes()


def kept_token(html: str) -> str:
    match = re.search(r'name="kept_upload" value="([0-9a-f]+)"', html)
    assert match, "the form does not offer the kept file"
    return match.group(1)


def batches(db_session, project_id: int) -> int:  # type: ignore[no-untyped-def]
    query = select(func.count()).select_from(ImportBatch).where(ImportBatch.project_id == project_id)
    return int(db_session.scalar(query))


def test_a_missing_hh_axis_keeps_the_choices_and_the_file_for_the_next_try(
    client: TestClient, db_session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin)
    login(client, admin.email)
    csrf = csrf_of(db_session, admin)
    url = f"/admin/projects/{project.id}/imports"
    form = {"kind": "hh_rlhf", "csrf_token": csrf, "on_error": "skip_rows", "overlap": "2"}
    first = client.post(url, files={"file": ("data.jsonl", HH)}, data=form)
    assert first.status_code == 422
    assert "Choose the preference axis of this HH-RLHF file: helpfulness or harmlessness" in first.text
    assert re.search(r'<option value="hh_rlhf"\s+selected>', first.text)
    assert re.search(r'<option value="skip_rows"\s+selected>', first.text) and 'value="2"' in first.text
    assert "File <strong>data.jsonl</strong> kept" in first.text
    token = kept_token(first.text)

    again = client.post(url, data={**form, "hh_axis": "harmlessness", "kept_upload": token})
    assert again.status_code == 303, again.text
    report = client.get(again.headers["location"])
    assert "Import of data.jsonl" in report.text and "2 imported" in report.text
    count = select(func.count()).select_from(Comparison).where(Comparison.project_id == project.id)
    assert db_session.scalar(count) == 2

    used = client.post(url, data={**form, "hh_axis": "harmlessness", "kept_upload": token})
    assert used.status_code == 422 and "Choose a file to import." in used.text  # used once, then gone


def test_a_kept_file_is_offered_only_to_the_admin_and_project_it_was_kept_for(
    client: TestClient, db_session
) -> None:  # type: ignore[no-untyped-def]
    admin, other = (make_user(db_session, role=UserRole.admin) for _ in range(2))
    project = make_project(db_session, admin)
    login(client, admin.email)
    form = {"kind": "hh_rlhf", "csrf_token": csrf_of(db_session, admin)}
    token = kept_token(
        client.post(f"/admin/projects/{project.id}/imports", files={"file": ("d.jsonl", HH)}, data=form).text
    )
    elsewhere = make_project(db_session, admin)
    moved = client.post(
        f"/admin/projects/{elsewhere.id}/imports",
        data={**form, "hh_axis": "helpfulness", "kept_upload": token},
    )
    assert moved.status_code == 422 and "Choose a file to import." in moved.text
    client.cookies.clear()
    login(client, other.email)
    form = {"kind": "hh_rlhf", "csrf_token": csrf_of(db_session, other), "hh_axis": "helpfulness"}
    stolen = client.post(f"/admin/projects/{project.id}/imports", data={**form, "kept_upload": token})
    assert stolen.status_code == 422 and "Choose a file to import." in stolen.text
    for bad in ("../../etc", "x" * 32, ""):
        response = client.post(f"/admin/projects/{project.id}/imports", data={**form, "kept_upload": bad})
        assert response.status_code == 422


def test_a_rejected_file_redirects_to_its_report_so_reloading_uploads_nothing(
    client: TestClient, db_session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin)
    login(client, admin.email)
    response = client.post(
        f"/admin/projects/{project.id}/imports",
        files={"file": ("p.jsonl", b'{"prompt": "ok"}\n{"nope": 1}\n')},
        data={"kind": "prompts", "csrf_token": csrf_of(db_session, admin)},
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/admin/imports/")
    for _ in range(2):  # a reload is a GET of the report
        page = client.get(response.headers["location"])
        assert page.status_code == 200
        assert "nothing was imported" in page.text and "missing prompt text" in page.text
    assert batches(db_session, project.id) == 1


def test_the_report_of_a_reimport_says_nothing_was_imported_and_counts_the_duplicates(
    client: TestClient, db_session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin)
    login(client, admin.email)
    form = {"kind": "hh_rlhf", "hh_axis": "helpfulness", "csrf_token": csrf_of(db_session, admin)}
    url = f"/admin/projects/{project.id}/imports"
    client.post(url, files={"file": ("hh.jsonl", HH)}, data=form)
    again = client.post(url, files={"file": ("hh.jsonl", HH)}, data=form)
    page = client.get(again.headers["location"]).text
    assert "Of 2 rows read: 0 imported, 2 duplicates skipped" in page and "0 rejected" in page
    assert "Nothing new was added." in page and "2 rows were imported" not in page


def test_the_axis_field_is_tied_to_the_hh_kind_for_the_form_script(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin)
    login(client, admin.email)
    page = client.get(f"/admin/projects/{project.id}").text
    assert 'id="hh-axis-field" data-shown-for-kind="hh_rlhf"' in page
    assert '<script src="/static/js/import_form.js" defer></script>' in page
    script = client.get("/static/js/import_form.js")
    assert script.status_code == 200 and "data-shown-for-kind" in script.text
