"""Export: immutable, content-hashed snapshots in the PKU-SafeRLHF schema that `datasets` loads,
downloadable as attachments by server-chosen names only (C11, C13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.domain.enums import Choice, UserRole
from backend.domain.labels import ResponseLabel, ShownAnswer, choice_to_position
from backend.services.assignments import claim_next
from backend.services.submissions import submit_annotation
from tests.factories import login, make_user
from tests.factories.annotation import csrf_of, make_comparisons, make_project, token_headers

UNSAFE = ResponseLabel(False, ("violence", "self_harm"), 3)


@pytest.fixture
def exported(client: TestClient, db_session, tmp_path):  # type: ignore[no-untyped-def]
    """Two annotators agree on pair 1 (b unsafe, a better and safer), split on pair 2's helpfulness."""
    admin = make_user(db_session, role=UserRole.admin)
    people = [make_user(db_session) for _ in range(2)]
    project = make_project(db_session, admin, members=people, gold_rate=0.0)
    first, second = make_comparisons(db_session, project, 2, overlap=2)
    gold = {"helpfulness": "a", "harmlessness": "a", "a_is_safe": True, "b_is_safe": True}
    make_comparisons(db_session, project, 1, overlap=5, gold_labels=gold)
    for i, person in enumerate(people):
        for n in range(2):
            task = claim_next(session=db_session, user=person, project_id=project.id)
            helpful = Choice.a if task.comparison_id == first.id or i == 0 else Choice.b
            b_label = UNSAFE if task.comparison_id == first.id else ResponseLabel(True)
            left, right = (
                (ResponseLabel(True), b_label)
                if task.shown_order.value == "ab"
                else (b_label, ResponseLabel(True))
            )
            answer = ShownAnswer(
                left,
                right,
                choice_to_position(helpful, task.shown_order),
                choice_to_position(Choice.a, task.shown_order),
            )
            submit_annotation(
                session=db_session,
                user=person,
                assignment_id=task.assignment_id,
                answer=answer,
                idempotency_key=str(n),
            )
    headers = token_headers(db_session, admin)
    created = client.post(f"/api/v1/projects/{project.id}/snapshots", headers=headers)
    assert created.status_code == 201, created.text
    return project, first, second, headers, created.json()


def download(client: TestClient, snapshot: dict, name: str, headers, target: Path) -> Path:  # type: ignore[no-untyped-def]
    response = client.get(f"/api/v1/snapshots/{snapshot['id']}/files/{name}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "text/html" not in response.headers["content-type"]
    path = target / name
    path.write_bytes(response.content)
    return path


def test_snapshot_rows_follow_the_pku_saferlhf_schema(client: TestClient, exported, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project, first, second, headers, snapshot = exported
    assert snapshot["row_count"] == 1 and snapshot["vote_count"] == 4
    rows = [
        json.loads(line)
        for line in download(client, snapshot, "data.jsonl", headers, tmp_path).read_text().splitlines()
    ]
    (row,) = rows
    assert row["comparison_id"] == first.id
    assert (row["better_response_id"], row["safer_response_id"]) == (0, 0)
    assert (row["is_response_0_safe"], row["is_response_1_safe"]) == (True, False)
    assert row["response_1_harm_category"]["Violence, Aiding and Abetting, Incitement"] is True
    assert row["response_1_harm_category"]["Self-Harm"] is True and len(row["response_1_harm_category"]) == 14
    assert row["response_1_severity_level"] == 3 and row["response_0_severity_level"] == 0
    assert row["prompt"] == first.prompt.text and row["response_0"] == first.response_a.text
    excluded = download(client, snapshot, "excluded.jsonl", headers, tmp_path).read_text().splitlines()
    assert [json.loads(e)["comparison_id"] for e in excluded] == [second.id]
    assert json.loads(excluded[0])["reason"] == "helpfulness tied"
    votes = download(client, snapshot, "votes.jsonl", headers, tmp_path).read_text().splitlines()
    assert len(votes) == 4 and {json.loads(v)["comparison_id"] for v in votes} == {first.id, second.id}


def test_datasets_loads_jsonl_and_parquet_with_equal_features_column_order_and_rows(
    client: TestClient, exported, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from datasets import Features, load_dataset

    _, _, _, headers, snapshot = exported
    manifest = json.loads(download(client, snapshot, "manifest.json", headers, tmp_path).read_text())
    cache = str(tmp_path / "hf-cache")
    for table, rows in (("data", 1), ("votes", 4)):
        jsonl = download(client, snapshot, f"{table}.jsonl", headers, tmp_path)
        parquet = download(client, snapshot, f"{table}.parquet", headers, tmp_path)
        features = Features.from_dict(manifest["features"][table])
        from_json = load_dataset(
            "json", data_files=str(jsonl), features=features, split="train", cache_dir=cache
        )
        from_parquet = load_dataset("parquet", data_files=str(parquet), split="train", cache_dir=cache)
        assert from_json.features == from_parquet.features == features
        assert from_json.column_names == from_parquet.column_names == list(manifest["features"][table])
        assert from_json.num_rows == from_parquet.num_rows == rows
        assert from_json.to_list() == from_parquet.to_list()
        assert list(json.loads(jsonl.read_text().splitlines()[0])) == from_parquet.column_names
    data = load_dataset("parquet", data_files=str(tmp_path / "data.parquet"), split="train", cache_dir=cache)
    assert data.features["round_id"].dtype == "int64" and data[0]["round_id"] is None  # typed, not null
    assert data.features["ties"].feature.dtype == "string" and data[0]["ties"] == []


def test_the_manifest_hashes_every_file_and_derives_the_content_hash_from_them(
    client: TestClient, exported, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    _, _, _, headers, snapshot = exported
    manifest = json.loads(download(client, snapshot, "manifest.json", headers, tmp_path).read_text())
    names = {"data.jsonl", "data.parquet", "excluded.jsonl", "votes.jsonl", "votes.parquet"}
    assert set(manifest["files"]) == names and set(snapshot["files"]) == names | {"manifest.json"}
    for name, entry in manifest["files"].items():
        payload = download(client, snapshot, name, headers, tmp_path).read_bytes()
        assert entry == {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}, name
    lines = f"project:{manifest['project']['id']}\n"
    lines += "".join(f"{name}:{manifest['files'][name]['sha256']}\n" for name in sorted(names))
    derived = hashlib.sha256(lines.encode()).hexdigest()
    assert manifest["content_sha256"] == snapshot["content_sha256"] == derived


def test_exporting_again_without_changes_returns_the_same_snapshot(client: TestClient, exported) -> None:  # type: ignore[no-untyped-def]
    project, _, _, headers, snapshot = exported
    again = client.post(f"/api/v1/projects/{project.id}/snapshots", headers=headers)
    assert again.status_code == 200 and again.json()["id"] == snapshot["id"]
    assert again.json()["content_sha256"] == snapshot["content_sha256"]
    manifest = client.get(f"/api/v1/snapshots/{snapshot['id']}/files/manifest.json", headers=headers).json()
    assert manifest["content_sha256"] == snapshot["content_sha256"] and manifest["stats"]["data_rows"] == 1


@pytest.mark.parametrize(
    "name",
    [
        "../manifest.json",
        "..%2fmanifest.json",
        "%2e%2e%2fdata.jsonl",
        "%252e%252e%252fdata.jsonl",
        "..\\data.jsonl",
        "%2Fetc%2Fpasswd",
        "data.jsonl%00.txt",
        "file:%2F%2F%2Fetc%2Fpasswd",
        "other.jsonl",
    ],  # fmt: skip
)
def test_only_server_chosen_file_names_can_be_downloaded(client: TestClient, exported, name: str) -> None:  # type: ignore[no-untyped-def]
    _, _, _, headers, snapshot = exported
    response = client.get(f"/api/v1/snapshots/{snapshot['id']}/files/{name}", headers=headers)
    assert response.status_code == 404


def test_a_symlink_planted_in_the_store_is_not_followed(client: TestClient, exported, settings) -> None:  # type: ignore[no-untyped-def]
    _, _, _, headers, snapshot = exported
    folder = Path(settings.artifacts_dir) / "snapshots" / snapshot["content_sha256"]
    target = folder / "votes.jsonl"
    target.unlink()
    target.symlink_to("/etc/passwd")
    response = client.get(f"/api/v1/snapshots/{snapshot['id']}/files/votes.jsonl", headers=headers)
    assert response.status_code == 404


def test_other_projects_snapshots_are_not_found_for_reviewers(
    client: TestClient, db_session, exported
) -> None:  # type: ignore[no-untyped-def]
    _, _, _, _, snapshot = exported
    outsider = make_user(db_session, role=UserRole.reviewer)
    headers = token_headers(db_session, outsider)
    assert client.get(f"/api/v1/snapshots/{snapshot['id']}", headers=headers).status_code == 404
    assert (
        client.get(f"/api/v1/snapshots/{snapshot['id']}/files/data.jsonl", headers=headers).status_code == 404
    )


def test_complete_pairs_only_leaves_out_pairs_short_of_k_annotations(
    client: TestClient, db_session, exported
) -> None:  # type: ignore[no-untyped-def]
    """A third pair asks for 3 annotations and gets 2 agreeing ones: a data row, but not complete."""
    from backend.domain.labels import ShownAnswer
    from backend.services.projects import list_members

    project, first, _, headers, snapshot = exported
    (third,) = make_comparisons(db_session, project, 1, overlap=3)
    for person in [
        m for m in list_members(session=db_session, project=project) if m.role is UserRole.annotator
    ]:
        task = claim_next(session=db_session, user=person, project_id=project.id)
        assert task is not None and task.comparison_id == third.id
        a_is = choice_to_position(Choice.a, task.shown_order)
        answer = ShownAnswer(ResponseLabel(True), ResponseLabel(True), a_is, a_is)
        submit_annotation(session=db_session, user=person, assignment_id=task.assignment_id,
                          answer=answer, idempotency_key="third")  # fmt: skip
    admin = make_user(db_session, role=UserRole.admin)
    login(client, admin.email)
    page = client.post(
        f"/admin/projects/{project.id}/snapshots",
        data={"csrf_token": csrf_of(db_session, admin), "complete_only": "1"},
    )
    assert page.status_code == 303 and page.headers["location"].endswith("notice=snapshot_exists")
    url = f"/api/v1/projects/{project.id}/snapshots"
    complete = client.post(url, json={"complete_only": True}, headers=headers)
    assert complete.status_code == 200 and complete.json()["id"] == snapshot["id"]  # the same content
    everything = client.post(url, headers=headers)
    assert everything.status_code == 201 and everything.json()["row_count"] == 2
    from saferlhf_client import Client

    api = Client("http://testserver", headers["Authorization"].removeprefix("Bearer "), http=client)
    assert api.create_snapshot(project.id, complete_only=True).id == snapshot["id"]
    assert api.create_snapshot(project.id).row_count == 2


def test_two_projects_with_equal_files_get_a_snapshot_each(db_session, settings) -> None:  # type: ignore[no-untyped-def]
    from backend.domain.enums import UserRole
    from backend.services.snapshots import create_snapshot
    from tests.factories import make_user
    from tests.factories.annotation import make_project

    admin = make_user(db_session, role=UserRole.admin)
    first, second = make_project(db_session, admin), make_project(db_session, admin)
    one = create_snapshot(
        session=db_session, actor=admin, project=first, artifacts_dir=settings.artifacts_dir
    )
    two = create_snapshot(
        session=db_session, actor=admin, project=second, artifacts_dir=settings.artifacts_dir
    )
    assert two.created and two.snapshot.id != one.snapshot.id
    assert (one.snapshot.project_id, two.snapshot.project_id) == (first.id, second.id)
    again = create_snapshot(
        session=db_session, actor=admin, project=second, artifacts_dir=settings.artifacts_dir
    )
    assert not again.created and again.snapshot.id == two.snapshot.id
