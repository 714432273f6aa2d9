"""The typed client (saferlhf_client) against the app, its independence from the server code, and
the OpenAPI document every API operation is described in."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.domain.enums import UserRole
from saferlhf_client import SAFE, Answer, Client, InvalidInput, unsafe
from saferlhf_client.errors import NotFound
from tests.conftest import REPO_ROOT
from tests.factories import make_user
from tests.factories.annotation import make_project, token_headers

EXAMPLES = REPO_ROOT / "docs" / "examples"


def bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def test_the_client_package_imports_nothing_from_the_server() -> None:
    for path in Path(REPO_ROOT / "saferlhf_client").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] in {"backend", "worker", "training"} for n in names), path


def test_a_full_annotation_round_through_the_typed_client(client: TestClient, db_session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    admin_user = make_user(db_session, role=UserRole.admin)
    person = make_user(db_session)
    admin = Client("http://testserver", bearer(token_headers(db_session, admin_user)), http=client)
    project = admin.create_project("client project", default_overlap=1, gold_rate=0)
    admin.add_member(project.id, person.id)
    result = admin.import_file(project.id, EXAMPLES / "pku_saferlhf_sample.jsonl", "pku_saferlhf")
    assert result.status == "committed" and result.accepted_rows == 8
    with pytest.raises(InvalidInput) as rejected:
        admin.import_file(project.id, b'{"prompt": ""}\n', "prompts", filename="bad.jsonl")
    assert rejected.value.body["import"]["report"]["rejected"][0]["row"] == 1

    me = Client("http://testserver", bearer(token_headers(db_session, person)), http=client)
    assert [p.id for p in me.list_projects()] == [project.id]
    assert len(me.get_project(project.id).category_keys) == 14
    task = me.claim_next(project.id)
    assert task is not None and task.prompt and task.left and task.right
    answer = Answer(SAFE, unsafe("violence", severity=3), "left", "left", confidence=5)
    first = me.submit(task.assignment_id, answer, idempotency_key="same")
    again = me.submit(task.assignment_id, answer, idempotency_key="same")
    assert first.id == again.id and again.replayed and not first.replayed
    assert first.answer.right.harm_categories == ("violence",)
    task = me.claim_next(project.id)
    assert task is not None
    me.submit(task.assignment_id, Answer(SAFE, SAFE, "equal", "equal"))
    task = me.claim_next(project.id)
    while task is not None:  # the page's path: one request saves and leases the next pair
        saved, task = me.submit_and_next(task.assignment_id, Answer(SAFE, SAFE, "equal", "equal"))
        assert not saved.replayed
    assert me.progress(project.id)["submitted_by_me"] == 8
    assert len(list(me.my_annotations(project.id))) == 8
    with pytest.raises(NotFound):
        me.get_project(project.id + 10_000)

    assert admin.quality(project.id)["votes"] == 8
    assert len(admin.labels(project.id)) == 8 and len(list(admin.votes(project.id))) == 8
    snapshot = admin.create_snapshot(project.id)
    assert snapshot.created and not admin.create_snapshot(project.id).created
    saved = admin.download_snapshot_file(snapshot.id, "data.jsonl", tmp_path / "data.jsonl")
    assert saved.read_text().count("\n") == snapshot.row_count


def test_openapi_documents_every_api_operation(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    api = [(p, m, op) for p, m, op in operations if p.startswith("/api/v1/")]
    assert len(api) >= 40
    for path, method, op in api:
        assert op.get("summary"), f"{method} {path} has no summary"
        assert any(code.startswith("2") for code in op["responses"]), f"{method} {path}"
    schemas = spec["components"]["schemas"]
    for name in (
        "TaskRead",
        "AnnotationSubmit",
        "AnnotationRead",
        "QualityRead",
        "SnapshotRead",
        "ErrorRead",
    ):
        assert name in schemas
    submit = spec["paths"]["/api/v1/assignments/{assignment_id}/submit"]["post"]
    assert {"400", "409", "422"} <= set(submit["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in submit["parameters"])


def test_sorting_by_a_field_outside_the_allowlist_is_400(client: TestClient, db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin)
    headers = token_headers(db_session, admin)
    for field in ("password_hash", "user.password_hash", "prompt__text"):
        response = client.get(
            f"/api/v1/projects/{project.id}/comparisons", params={"sort": field}, headers=headers
        )
        assert response.status_code == 400 and response.json()["code"] == "bad_query", field
    ok = client.get(
        f"/api/v1/projects/{project.id}/comparisons", params={"sort": "priority"}, headers=headers
    )
    assert ok.status_code == 200


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_explorer_pages_load_everything_from_this_server(client: TestClient, page: str) -> None:
    """No CDN: every script and stylesheet the page names is a path here and is served, and the
    page's CSP allows no other origin and no inline script."""
    response = client.get(page)
    assert response.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    csp = response.headers["content-security-policy"]
    assert "http" not in csp and "script-src 'self';" in csp, csp
