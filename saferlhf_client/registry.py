"""The model registry and job metrics, as methods of Client (mixed in).

download_model() verifies every file against the sha256 the server recorded at registration, so
a corrupted or truncated download is an error, never a model that loads and scores differently.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import httpx

from saferlhf_client.errors import ApiError, error_for

API = "/api/v1"
CHUNK = 1 << 20


class IntegrityError(ApiError):
    """A downloaded file does not match the size or sha256 the registry recorded."""


class _Transport(Protocol):
    http: httpx.Client
    headers: dict[str, str]

    def _call(self, method: str, path: str, **kwargs: Any) -> Any: ...


def _archive_bytes(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
    return buffer.getvalue()


def _raise_for(response: httpx.Response) -> None:
    response.read()
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500], "code": "error"}
    raise error_for(response.status_code, body if isinstance(body, dict) else {"detail": str(body)})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(directory: Path, files: list[dict[str, Any]]) -> None:
    for record in files:
        path = directory / PurePosixPath(record["path"])
        if not path.is_file():
            raise IntegrityError(0, "integrity", f"'{record['path']}' is missing from the download")
        if path.stat().st_size != record["size"] or _sha256(path) != record["sha256"]:
            detail = f"'{record['path']}' does not match its recorded sha256; the download is corrupt"
            raise IntegrityError(0, "integrity", detail)


class RegistryMixin:
    def list_models(
        self: _Transport,
        *,
        kind: str | None = None,
        project_id: int | None = None,
        round_id: int | None = None,
        training_job_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Registered models, filtered; `training_job_id`: the models that job produced."""
        filters = (("kind", kind), ("project_id", project_id), ("round_id", round_id))
        params = {k: v for k, v in (*filters, ("training_job_id", training_job_id)) if v}
        result: list[dict[str, Any]] = self._call("GET", "/models", params=params)
        return result

    def get_model(self: _Transport, model_id: int) -> dict[str, Any]:
        """The model with its lineage (snapshot, votes, parent, training job) and its files."""
        result: dict[str, Any] = self._call("GET", f"/models/{model_id}")
        return result

    def register_model(
        self: _Transport, path: str | Path, *, kind: str, name: str | None = None, **links: int | None
    ) -> dict[str, Any]:
        """Upload a local Hugging Face directory (safetensors weights) as a new registered model.
        `links`: project_id, round_id, snapshot_id, parent_id."""
        directory = Path(path)
        form = {"kind": kind, "name": name or directory.name}
        form |= {k: str(v) for k, v in links.items() if v is not None}
        files = {"file": (f"{directory.name}.tar.gz", _archive_bytes(directory), "application/gzip")}
        result: dict[str, Any] = self._call("POST", "/models", data=form, files=files)
        return result

    def download_model(self: _Transport, model_id: int, dest: str | Path) -> Path:
        """Download a model into `dest` (created; must not exist or be empty) and verify each
        file's sha256 against the registry. Returns `dest`, ready for from_pretrained."""
        target = Path(dest)
        if target.exists() and any(target.iterdir()):
            raise FileExistsError(f"'{target}' is not empty")
        files: list[dict[str, Any]] = self._call("GET", f"/models/{model_id}/files")
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
        try:
            archive = work / "model.tar"
            with self.http.stream(
                "GET", f"{API}/models/{model_id}/archive", headers=self.headers
            ) as response:
                if response.status_code >= 400:
                    _raise_for(response)
                with open(archive, "wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
            unpacked = work / "model"
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")  # refuses links and paths outside
            _verify(unpacked, files)
            if target.exists():
                target.rmdir()
            shutil.move(str(unpacked), str(target))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target

    def job_metrics(
        self: _Transport, job_id: int, *, after_step: int | None = None, names: list[str] | None = None
    ) -> dict[str, Any]:
        """{"job_id", "state", "progress", "series": {name: [[step, value], ...]}, "last_step"}."""
        params: dict[str, Any] = {}
        if after_step is not None:
            params["after_step"] = after_step
        if names:
            params["name"] = names
        result: dict[str, Any] = self._call("GET", f"/jobs/{job_id}/metrics", params=params)
        return result
