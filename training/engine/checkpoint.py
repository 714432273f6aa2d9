"""Atomic, pickle-free checkpoints.

Layout under ``<output_dir>/checkpoints/``::

    step-00000120/      one complete checkpoint (files written by the backend and the trainer)
        COMPLETE        written last inside the directory, after every file was fsynced
    latest              text file naming the newest complete checkpoint, replaced atomically

A checkpoint is written to a temporary directory, every file and the directory are fsynced, the
COMPLETE marker is written, and the directory is renamed into place; only then is ``latest``
rewritten (temp file, fsync, rename). A crash at any point leaves either the old or the new
checkpoint fully usable, and temporary leftovers are removed on the next start.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
LATEST = "latest"
PREFIX = "step-"


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        _fsync_path(path)
    _fsync_path(directory)


def is_complete(path: Path) -> bool:
    return (path / COMPLETE).is_file()


class CheckpointManager:
    def __init__(self, root: str | Path, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = keep

    def _tmp_dirs(self) -> list[Path]:
        return [p for p in self.root.glob(".tmp-*") if p.is_dir()] if self.root.exists() else []

    def clean_stale(self) -> None:
        """Remove temporary directories left by a run killed mid-save."""
        for path in self._tmp_dirs():
            shutil.rmtree(path, ignore_errors=True)

    def complete_checkpoints(self) -> list[Path]:
        if not self.root.exists():
            return []
        found = [p for p in self.root.glob(f"{PREFIX}*") if p.is_dir() and is_complete(p)]
        return sorted(found, key=lambda p: int(p.name.removeprefix(PREFIX)))

    def latest(self) -> Path | None:
        """The checkpoint named by ``latest`` if complete, else the newest complete one."""
        pointer = self.root / LATEST
        if pointer.is_file():
            candidate = self.root / pointer.read_text(encoding="utf-8").strip()
            if is_complete(candidate):
                return candidate
        found = self.complete_checkpoints()
        return found[-1] if found else None

    def save(self, step: int, write: Callable[[Path], None]) -> Path:
        """Write a checkpoint for ``step``: ``write(tmp_dir)`` fills it; returns the final path."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"{PREFIX}{step:08d}"
        tmp = self.root / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        _fsync_tree(tmp)
        (tmp / COMPLETE).write_text(f"{step}\n", encoding="utf-8")
        _fsync_path(tmp / COMPLETE)
        _fsync_path(tmp)
        if final.exists():  # a resumed run re-saving the same step: replace the old copy
            trash = self.root / f".tmp-trash-{final.name}-{os.getpid()}"
            final.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        tmp.rename(final)
        _fsync_path(self.root)
        self._write_latest(final.name)
        self._prune()
        return final

    def _write_latest(self, name: str) -> None:
        tmp = self.root / f".{LATEST}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.root / LATEST)
        _fsync_path(self.root)

    def _prune(self) -> None:
        for old in self.complete_checkpoints()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
