"""Uploads kept for a second try of the import form.

Browsers cannot refill a file input, so when the form comes back with a 422 (an option is missing
or invalid) the uploaded file would be lost and the admin would have to find it again. The page
keeps it under a key the server chooses (`uploads/<random hex>`, never a client path), offers it
again ("file data.jsonl kept"), and a resubmission that names the key imports that file. A key
is good only for the admin and the project it was kept for, the file is deleted once an import
has used it, and kept files older than a day are swept whenever another one is kept.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from backend.domain.errors import NotFound
from backend.services.storage import resolve_artifact

FOLDER = "uploads"
DATA, META = "upload.bin", "meta.json"
MAX_AGE_S = 24 * 3600


@dataclass(frozen=True)
class KeptUpload:
    token: str
    filename: str
    folder: Path

    def open(self) -> IO[bytes]:
        return open(self.folder / DATA, "rb")  # noqa: SIM115 (the caller closes it)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _sweep(root: Path) -> None:
    cutoff = time.time() - MAX_AGE_S
    for folder in (root / FOLDER).iterdir():
        if folder.is_dir() and not folder.is_symlink() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)


def keep_upload(root: Path, *, upload: IO[bytes], filename: str, user_id: int, project_id: int) -> KeptUpload:
    (root / FOLDER).mkdir(parents=True, exist_ok=True)
    _sweep(root)
    token = secrets.token_hex(16)
    folder = root / FOLDER / token
    folder.mkdir()
    upload.seek(0)
    with open(folder / DATA, "wb") as out:
        shutil.copyfileobj(upload, out, 1 << 20)
    meta = {"filename": filename, "user_id": user_id, "project_id": project_id}
    (folder / META).write_text(json.dumps(meta))
    return KeptUpload(token, filename, folder)


def find_kept(root: Path, token: str, *, user_id: int, project_id: int) -> KeptUpload | None:
    """The upload kept under `token` for this admin and project, or None (unknown, or not theirs)."""
    if not token:
        return None
    try:
        folder = resolve_artifact(root, f"{FOLDER}/{token}")
        meta = json.loads(resolve_artifact(root, f"{FOLDER}/{token}", META).read_text())
    except (NotFound, OSError, ValueError):
        return None
    if meta.get("user_id") != user_id or meta.get("project_id") != project_id:
        return None
    if not (folder / DATA).is_file():
        return None
    return KeptUpload(token, str(meta.get("filename") or "upload"), folder)
