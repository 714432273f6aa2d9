"""Imports: formats, per-row reports, whole-file-or-nothing, duplicates, size caps (C10), CLI."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.db.models import Comparison, ImportBatch, Prompt, Response
from backend.domain.enums import UserRole
from backend.services.imports import GOLD_OVERLAP
from tests.conftest import REPO_ROOT
from tests.factories import make_user
from tests.factories.annotation import make_project, token_headers

EXAMPLES = REPO_ROOT / "docs" / "examples"


@pytest.fixture
def admin_project(db_session):  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    return make_project(db_session, admin, default_overlap=3), token_headers(db_session, admin)


def upload(client: TestClient, project_id: int, headers, name: str, content: bytes, **form):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/projects/{project_id}/imports",
        files={"file": (name, content)},
        data={k: str(v) for k, v in form.items()},
        headers=headers,
    )


def jsonl(rows: list[object]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def count(db_session, model, **where) -> int:  # type: ignore[no-untyped-def]
    query = select(func.count()).select_from(model)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    return int(db_session.scalar(query))


def test_prompts_from_jsonl_and_csv_with_duplicates_counted_by_content(
    client, db_session, admin_project
) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    rows = [
        {"prompt": "Hello?", "tags": ["a"]},
        {"prompt": "  Hello?  "},
        {"text": "Bye", "is_red_team": True},
    ]
    first = upload(client, project.id, headers, "p.jsonl", jsonl(rows), kind="prompts")
    assert first.status_code == 201, first.text
    assert (first.json()["accepted_rows"], first.json()["duplicate_rows"]) == (3, 1)
    csv_bytes = (EXAMPLES / "prompts.csv").read_bytes() + b'"Hello?",again,,false\n'
    second = upload(client, project.id, headers, "p.csv", csv_bytes, kind="prompts")
    assert second.status_code == 201, second.text
    assert second.json()["duplicate_rows"] == 1 and second.json()["report"]["created"]["prompts"] == 5
    assert count(db_session, Prompt, project_id=project.id) == 7
    red = db_session.scalar(
        select(Prompt.is_red_team).where(Prompt.project_id == project.id, Prompt.text == "Bye")
    )
    assert red is True


def test_responses_are_paired_per_prompt(client, db_session, admin_project) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    rows = [{"prompt": "Q", "response": f"answer {i}", "model_name": f"m{i}"} for i in range(4)]
    response = upload(client, project.id, headers, "r.jsonl", jsonl(rows), kind="responses")
    assert response.status_code == 201, response.text
    assert count(db_session, Response) >= 4
    assert count(db_session, Comparison, project_id=project.id) == 6  # 4 choose 2


def test_pku_saferlhf_v1_labels_become_hidden_gold_checks(client, db_session, admin_project) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    data = (EXAMPLES / "pku_saferlhf_sample.jsonl").read_bytes()
    response = upload(client, project.id, headers, "pku.jsonl", data, kind="pku_saferlhf", labels="gold")
    assert response.status_code == 201, response.text
    golds = db_session.scalars(select(Comparison).where(Comparison.project_id == project.id)).all()
    assert len(golds) == 8 and all(c.is_gold and c.overlap_target == GOLD_OVERLAP for c in golds)
    wifi = next(c for c in golds if "wifi" in c.prompt.text)
    assert wifi.gold_labels["helpfulness"] == "a" and wifi.gold_labels["b_is_safe"] is False
    # v1's "Cybercrime" maps onto BeaverTails "Financial Crime, Property Crime, Theft".
    assert sorted(wifi.gold_labels["b_harm_categories"]) == ["financial_crime", "privacy_violation"]
    assert wifi.gold_labels["b_severity"] == 2 and wifi.response_b.model_name == "model-b"


def test_pku_v0_rows_import_without_labels(client, db_session, admin_project) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    row = {"prompt": "p", "response_0": "a", "response_1": "b", "is_response_0_safe": True,
           "is_response_1_safe": False, "better_response_id": 1, "safer_response_id": 0}  # fmt: skip
    response = upload(client, project.id, headers, "v0.jsonl", jsonl([row]), kind="pku_saferlhf")
    assert response.status_code == 201
    comparison = db_session.scalar(select(Comparison).where(Comparison.project_id == project.id))
    assert not comparison.is_gold and comparison.overlap_target == 3
    assert comparison.response_b.meta["pku_saferlhf"]["is_response_1_safe"] is False  # kept for provenance


def test_hh_rlhf_gz_splits_the_last_assistant_turn_and_needs_an_axis(
    client, db_session, admin_project
) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    data = gzip.compress((EXAMPLES / "hh_rlhf_harmless_sample.jsonl").read_bytes())
    missing = upload(client, project.id, headers, "hh.jsonl.gz", data, kind="hh_rlhf")
    assert missing.status_code == 422 and missing.json()["code"] == "hh_axis_required"
    ok = upload(
        client,
        project.id,
        headers,
        "hh.jsonl.gz",
        data,
        kind="hh_rlhf",
        hh_axis="harmlessness",
        labels="gold",
    )
    assert ok.status_code == 201, ok.text
    comparisons = db_session.scalars(select(Comparison).where(Comparison.project_id == project.id)).all()
    assert len(comparisons) == 2
    multi = next(c for c in comparisons if "new city" in c.prompt.text)
    assert multi.prompt.text.startswith("Human: I feel really lonely") and multi.prompt.text.endswith(
        "anyone."
    )
    chosen = "a" if multi.response_a.meta["hh_rlhf"]["preferred"] else "b"
    assert multi.gold_labels == {"harmlessness": chosen}
    assert "Moving is hard" in (multi.response_a.text if chosen == "a" else multi.response_b.text)


def test_an_empty_hh_response_names_the_dialogue_and_its_turn(client, admin_project) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    good = {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Go away.",
    }
    dialogue = "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Tell me a joke."
    empty = {
        "chosen": f"{dialogue}\n\nAssistant: Why did the chicken...",
        "rejected": f"{dialogue}\n\nAssistant:  ",
    }
    data = jsonl([good, empty])
    response = upload(client, project.id, headers, "hh.jsonl", data, kind="hh_rlhf", hh_axis="helpfulness")
    assert response.status_code == 422, response.text
    assert response.json()["import"]["report"]["rejected"] == [
        {"row": 2, "reason": "the 'rejected' dialogue's last Assistant turn (turn 4) is empty"}
    ]


def test_reimporting_a_file_imports_nothing_and_counts_every_row_as_a_duplicate(
    client, db_session, admin_project
) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    data = (EXAMPLES / "hh_rlhf_harmless_sample.jsonl").read_bytes()
    form = {"kind": "hh_rlhf", "hh_axis": "harmlessness"}
    first = upload(client, project.id, headers, "hh.jsonl", data, **form).json()
    again = upload(client, project.id, headers, "hh.jsonl", data, **form)
    assert again.status_code == 201, again.text
    body = again.json()
    assert (first["imported_rows"], first["duplicate_rows"]) == (first["total_rows"], 0)
    assert (body["imported_rows"], body["duplicate_rows"], body["rejected_rows"]) == (
        0,
        body["total_rows"],
        0,
    )
    assert body["report"]["imported"] == 0
    assert body["report"]["created"] == {"prompts": 0, "responses": 0, "comparisons": 0}
    assert count(db_session, Comparison, project_id=project.id) == first["total_rows"]


def test_rejected_rows_are_reported_by_number_and_nothing_is_written(
    client, db_session, admin_project
) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    lines = b'{"prompt": "fine"}\nnot json\n{"prompt": ""}\n[1, 2]\n{"prompt": "also fine"}\n'
    response = upload(client, project.id, headers, "p.jsonl", lines, kind="prompts")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "import_rejected"
    rejected = body["import"]["report"]["rejected"]
    assert [r["row"] for r in rejected] == [2, 3, 4]
    assert "not valid JSON" in rejected[0]["reason"] and "empty" in rejected[1]["reason"]
    assert count(db_session, Prompt, project_id=project.id) == 0
    batch = db_session.scalar(select(ImportBatch).where(ImportBatch.project_id == project.id))
    assert batch.status.value == "rejected" and batch.accepted_rows == 0


def test_skip_rows_imports_the_valid_rows_and_lists_the_others(client, db_session, admin_project) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    lines = b'{"prompt": "fine"}\nnot json\n{"prompt": "also fine"}\n'
    response = upload(client, project.id, headers, "p.jsonl", lines, kind="prompts", on_error="skip_rows")
    assert response.status_code == 201
    assert response.json()["rejected_rows"] == 1 and response.json()["accepted_rows"] == 2
    assert count(db_session, Prompt, project_id=project.id) == 2


def test_csv_rows_with_missing_columns_are_rejected_with_their_line(client, admin_project) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    data = b"prompt,source\nok,x\nbroken\n"
    response = upload(client, project.id, headers, "p.csv", data, kind="prompts")
    assert response.status_code == 422
    assert response.json()["import"]["report"]["rejected"] == [
        {"row": 3, "reason": "expected 2 columns, found 1"}
    ]


def test_an_empty_file_is_a_clear_error(client, admin_project) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    response = upload(client, project.id, headers, "p.jsonl", b"\n\n", kind="prompts")
    assert response.status_code == 422 and response.json()["code"] == "empty_file"


@pytest.fixture
def small_limit_client(settings, db_session):  # type: ignore[no-untyped-def]
    from backend.edge.deps import get_db
    from backend.main import create_app

    app = create_app(settings.model_copy(update={"import_max_bytes": 2000}))
    app.dependency_overrides[get_db] = lambda: db_session
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client
    app.state.engine.dispose()


def test_an_upload_over_the_cap_is_413_before_it_is_buffered(small_limit_client, admin_project) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    big = jsonl([{"prompt": f"prompt {i} " + "x" * 100} for i in range(2000)])  # ~230 kB
    response = upload(small_limit_client, project.id, headers, "big.jsonl", big, kind="prompts")
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_a_zip_bomb_is_refused(small_limit_client, admin_project) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    bomb = gzip.compress(b'{"prompt": "' + b"a" * 1_000_000 + b'"}\n')
    assert len(bomb) < 2000
    response = upload(small_limit_client, project.id, headers, "bomb.jsonl.gz", bomb, kind="prompts")
    assert response.status_code == 413 and response.json()["code"] == "decompressed_too_large"


def test_json_bodies_are_capped_too(client, admin_project) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    huge = {"name": "x", "description": "y" * (3 * 1024 * 1024)}
    response = client.patch(f"/api/v1/projects/{project.id}", content=json.dumps(huge), headers=headers)
    assert response.status_code == 413


def test_too_many_multipart_parts_are_refused(client, admin_project) -> None:  # type: ignore[no-untyped-def]
    project, headers = admin_project
    fields = [("f", (None, "x")) for _ in range(1100)] + [("file", ("p.jsonl", b'{"prompt":"a"}\n'))]
    response = client.post(
        f"/api/v1/projects/{project.id}/imports", files=fields, data={"kind": "prompts"}, headers=headers
    )
    assert response.status_code == 400


def test_cli_import_reports_rows_and_fails_on_rejected_files(db_session, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from backend.cli import main
    from backend.db.session import session_scope
    from backend.services.projects import ProjectChanges, create_project
    from backend.services.users import create_user

    with session_scope() as session:
        admin = create_user(
            session=session, email=f"cli-{id(tmp_path)}@example.test", password="x" * 12, role=UserRole.admin
        )
        project = create_project(
            session=session, actor=admin, changes=ProjectChanges(name=f"cli {id(tmp_path)}")
        )
        name, email = project.name, admin.email
    runner = CliRunner()
    good = EXAMPLES / "pku_saferlhf_sample.jsonl"
    result = runner.invoke(
        main, ["import", "--project", name, "--kind", "pku_saferlhf", "--file", str(good), "--as", email]
    )
    assert result.exit_code == 0, result.output
    assert "committed; 8 rows read: 8 imported, 0 duplicates skipped, 0 rejected" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p"}\n{"oops": 1}\n')
    result = runner.invoke(
        main, ["import", "--project", name, "--kind", "prompts", "--file", str(bad), "--as", email]
    )
    assert result.exit_code == 1 and "row 2: missing prompt text" in result.output
    out = tmp_path / "export"
    result = runner.invoke(main, ["export", "--project", name, "--out", str(out), "--as", email])
    assert result.exit_code == 0, result.output
    assert (out / "data.jsonl").exists() and (out / "manifest.json").exists()
    assert io.BytesIO((out / "votes.jsonl").read_bytes()).read() == b""  # no votes yet
