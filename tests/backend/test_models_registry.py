"""The model registry: registration checks, the server-chosen copy, REST upload and download,
lineage both ways (model -> snapshot and votes, snapshot -> models), and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.db.models import ModelArtifact
from backend.domain.enums import ArtifactKind, UserRole
from backend.domain.errors import InvalidInput
from backend.services.models import register_model_dir, resolve_model_dir, weights_sha256
from backend.services.snapshots import create_snapshot
from saferlhf_client import Client
from saferlhf_client.registry import IntegrityError
from tests.conftest import REPO_ROOT
from tests.factories import make_user
from tests.factories.annotation import make_project, token_headers
from tests.factories.models import fake_model_dir, register_fake, tar_gz


def test_registering_copies_the_directory_under_a_server_key_with_per_file_hashes(
    db_session, settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    source = fake_model_dir(tmp_path / "sft")
    model = register_model_dir(
        session=db_session, settings=settings, kind=ArtifactKind.policy, source_dir=source, name="sft"
    )
    stored = resolve_model_dir(session=db_session, settings=settings, model_id=model.id)
    assert model.storage_key.startswith("models/") and stored != source
    assert sorted(f["path"] for f in model.files) == [
        "config.json",
        "extra/notes.txt",
        "model.safetensors",
        "tokenizer.json",
    ]
    for record in model.files:
        assert (stored / record["path"]).read_bytes() == (source / record["path"]).read_bytes()
    assert model.sha256 == weights_sha256(model.files)
    assert model.size_bytes == sum(f["size"] for f in model.files)
    (source / "model.safetensors").write_bytes(b"changed later")  # the registry owns its copy
    assert (stored / "model.safetensors").read_bytes() != b"changed later"


@pytest.mark.parametrize("pickle_name", ["pytorch_model.bin", "model.pt", "weights.pth", "x.ckpt", "a.pkl"])
def test_pickled_weights_are_refused_with_a_one_line_reason(  # type: ignore[no-untyped-def]
    db_session, settings, tmp_path, pickle_name
) -> None:
    source = fake_model_dir(tmp_path / "m")
    (source / pickle_name).write_bytes(b"\x80\x04")
    with pytest.raises(InvalidInput, match="pickle checkpoint, which runs code when loaded") as caught:
        register_model_dir(
            session=db_session, settings=settings, kind=ArtifactKind.reward, source_dir=source, name="m"
        )
    assert "\n" not in caught.value.detail


def test_a_directory_without_config_or_safetensors_or_with_a_link_is_refused(  # type: ignore[no-untyped-def]
    db_session, settings, tmp_path
) -> None:
    def refused(source: Path, reason: str) -> None:
        with pytest.raises(InvalidInput, match=reason):
            register_model_dir(
                session=db_session, settings=settings, kind=ArtifactKind.cost, source_dir=source, name="x"
            )

    no_config = fake_model_dir(tmp_path / "a")
    (no_config / "config.json").unlink()
    refused(no_config, "no config.json")
    no_weights = fake_model_dir(tmp_path / "b")
    (no_weights / "model.safetensors").unlink()
    refused(no_weights, "no \\*.safetensors")
    linked = fake_model_dir(tmp_path / "c")
    (linked / "secret").symlink_to("/etc/passwd")
    refused(linked, "symbolic link")
    before = set((Path(settings.artifacts_dir) / "models").glob("*"))
    refused(linked, "symbolic link")
    assert set((Path(settings.artifacts_dir) / "models").glob("*")) == before  # nothing left behind


@pytest.fixture
def admin_api(app, db_session):  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    client = TestClient(app, follow_redirects=False)
    client.headers.update(token_headers(db_session, admin))
    return admin, client


def test_an_uploaded_archive_is_registered_and_its_lineage_leads_to_the_snapshot_and_votes(
    admin_api, db_session, settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    admin, client = admin_api
    project = make_project(db_session, admin)
    snapshot = create_snapshot(
        session=db_session, actor=admin, project=project, artifacts_dir=settings.artifacts_dir
    ).snapshot
    parent = register_fake(db_session, settings, tmp_path, kind=ArtifactKind.policy)
    archive = tar_gz(fake_model_dir(tmp_path / "rm"), prefix="rm/")  # wrapped in one folder
    form = {
        "kind": "reward",
        "name": "rm-1",
        "project_id": str(project.id),
        "snapshot_id": str(snapshot.id),
        "parent_id": str(parent.id),
    }
    response = client.post("/api/v1/models", data=form, files={"file": ("rm.tar.gz", archive)})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["snapshot_sha256"] == snapshot.content_sha256
    assert body["lineage"]["snapshot"]["votes_url"] == f"/api/v1/snapshots/{snapshot.id}/files/votes.jsonl"
    assert body["lineage"]["parent"]["id"] == parent.id
    assert {f["path"] for f in body["files"]} >= {"config.json", "model.safetensors", "extra/notes.txt"}
    assert client.get(body["lineage"]["snapshot"]["votes_url"]).status_code == 200

    trained_on = client.get(f"/api/v1/snapshots/{snapshot.id}/models").json()
    assert [m["id"] for m in trained_on] == [body["id"]]
    # Filtered by project too: other tests of the session leave reward models behind.
    mine = client.get("/api/v1/models", params={"kind": "reward", "project_id": project.id}).json()
    assert [m["id"] for m in mine] == [body["id"]]
    assert client.get("/api/v1/models", params={"project_id": project.id, "kind": "cost"}).json() == []
    parent_lineage = client.get(f"/api/v1/models/{parent.id}").json()["lineage"]
    assert body["id"] in [c["id"] for c in parent_lineage["children"]]
    files = client.get(f"/api/v1/models/{body['id']}/files").json()
    assert files == body["files"]


def _member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 1, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, (size if kind == tarfile.REGTYPE else 0), link
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_member("../escape.txt"), "absolute or '..' path"),
        (_member("/etc/cron.d/x"), "absolute or '..' path"),
        (_member("link", tarfile.SYMTYPE, link="/etc/passwd"), "link or special file"),
        (_member("hard", tarfile.LNKTYPE, link="config.json"), "link or special file"),
    ],
)
def test_an_archive_with_unsafe_members_is_refused_and_registers_nothing(
    admin_api, db_session, tmp_path, member, reason
) -> None:  # type: ignore[no-untyped-def]
    _, client = admin_api
    archive = tar_gz(fake_model_dir(tmp_path / "m"), extra=[member])
    response = client.post(
        "/api/v1/models", data={"kind": "reward", "name": "evil"}, files={"file": ("m.tar.gz", archive)}
    )
    assert response.status_code == 422 and reason in response.json()["detail"], response.text
    assert db_session.scalar(select(ModelArtifact).where(ModelArtifact.name == "evil")) is None
    assert not (tmp_path.parent / "escape.txt").exists()


def test_an_archive_that_unpacks_past_the_size_limit_is_refused(db_session, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from backend.edge.deps import get_db
    from backend.main import create_app

    small = create_app(settings.model_copy(update={"model_upload_max_bytes": 100}))
    small.dependency_overrides[get_db] = lambda: db_session
    admin = make_user(db_session, role=UserRole.admin)
    client = TestClient(small, follow_redirects=False)
    client.headers.update(token_headers(db_session, admin))
    archive = tar_gz(fake_model_dir(tmp_path / "big"))  # a few hundred bytes unpacked
    response = client.post(
        "/api/v1/models", data={"kind": "reward", "name": "big"}, files={"file": ("m.tar.gz", archive)}
    )
    small.state.engine.dispose()
    assert response.status_code == 413, response.text
    assert "MODEL_UPLOAD_MAX_BYTES" in response.json()["detail"]


def test_pickles_in_an_upload_are_refused(admin_api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, client = admin_api
    source = fake_model_dir(tmp_path / "p")
    (source / "pytorch_model.bin").write_bytes(b"\x80\x04")
    response = client.post(
        "/api/v1/models", data={"kind": "reward", "name": "p"}, files={"file": ("p.tar.gz", tar_gz(source))}
    )
    assert response.status_code == 422 and "pickle" in response.json()["detail"]


def test_the_client_downloads_a_model_and_verifies_every_file(  # type: ignore[no-untyped-def]
    admin_api, db_session, settings, tmp_path
) -> None:
    _, http = admin_api
    model = register_fake(db_session, settings, tmp_path)
    api = Client("http://testserver", token="unused", http=http)
    api.headers.pop("Authorization")  # the test client already carries the admin token
    out = api.download_model(model.id, tmp_path / "download")
    stored = resolve_model_dir(session=db_session, settings=settings, model_id=model.id)
    for record in model.files:
        assert (out / record["path"]).read_bytes() == (stored / record["path"]).read_bytes()

    size = next(f["size"] for f in model.files if f["path"] == "model.safetensors")
    (stored / "model.safetensors").write_bytes(b"\0" * size)  # bit rot on the server, same size
    with pytest.raises(IntegrityError, match="does not match its recorded sha256"):
        api.download_model(model.id, tmp_path / "second")
    assert not (tmp_path / "second").exists()


def test_models_are_admin_only(app, db_session, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = register_fake(db_session, settings, tmp_path)
    reviewer = make_user(db_session, role=UserRole.reviewer)
    client = TestClient(app, follow_redirects=False)
    client.headers.update(token_headers(db_session, reviewer))
    for path in ("/api/v1/models", f"/api/v1/models/{model.id}", f"/api/v1/models/{model.id}/archive"):
        assert client.get(path).status_code == 403, path


def test_register_model_cli_registers_a_local_directory_and_refuses_pickles(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "ARTIFACTS_DIR": str(settings.artifacts_dir), "DATABASE_URL": settings.database_url}
    source = fake_model_dir(tmp_path / "sft-cli")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "backend.cli", "register-model", *args]
        return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)

    done = cli("--kind", "policy", "--path", str(source), "--name", "sft-from-cli")
    assert done.returncode == 0, done.stderr
    assert "registered policy model 'sft-from-cli'" in done.stdout
    (source / "pytorch_model.bin").write_bytes(b"\x80\x04")
    refused = cli("--kind", "policy", "--path", str(source))
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("error: 'pytorch_model.bin' is a pickle checkpoint")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_archives_made_by_tar_dot_and_by_zip_are_both_accepted(admin_api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io
    import zipfile

    _, client = admin_api
    source = fake_model_dir(tmp_path / "m")
    made_by_tar = subprocess.run(
        ["tar", "-C", str(source), "-czf", "-", "."], capture_output=True, check=True
    ).stdout  # members "./", "./config.json", ...
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(source).as_posix())
    expected = {f.relative_to(source).as_posix() for f in source.rglob("*") if f.is_file()}
    for name, payload in (("m.tgz", made_by_tar), ("m.zip", buffer.getvalue())):
        response = client.post(
            "/api/v1/models", data={"kind": "cost", "name": name}, files={"file": (name, payload)}
        )
        assert response.status_code == 201, response.text
        assert {f["path"] for f in response.json()["files"]} == expected
