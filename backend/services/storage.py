"""Files under the artifacts root, addressed by server-chosen keys only (docs/design/reliability.md C11).

Clients never send paths. A key comes from the database and a file name from a fixed allowlist;
the resolved path is re-checked at every read to lie inside the root and not to be a symlink, so a
planted link or a corrupted key cannot reach anything else (MLflow CVE-2023-1177 / CVE-2026-2614
validated only at creation time).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from backend.domain.errors import NotFound

KEY_RE = re.compile(r"^[a-z0-9_]+(/[a-z0-9_]+)*$")


def resolve_artifact(root: Path, key: str, name: str | None = None) -> Path:
    if not KEY_RE.match(key) or (name is not None and not re.match(r"^[a-z0-9_]+\.[a-z]+$", name)):
        raise NotFound("file not found")
    base = root.resolve()
    path = base / key if name is None else base / key / name
    if path.is_symlink() or any(p.is_symlink() for p in path.parents if p != base and base in p.parents):
        raise NotFound("file not found")
    resolved = path.resolve()
    if base not in resolved.parents:
        raise NotFound("file not found")
    return resolved


def publish_directory(tmp_dir: Path, final_dir: Path) -> None:
    """Make a fully written directory visible under its final name in one rename."""
    for child in tmp_dir.iterdir():
        with open(child, "rb") as handle:
            os.fsync(handle.fileno())
    if final_dir.exists():
        shutil.rmtree(final_dir)  # a leftover of a crash between rename and the database commit
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_dir, final_dir)
    fd = os.open(final_dir.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
