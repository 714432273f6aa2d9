"""Atomic, pickle-free checkpoints.

Layout under ``<output_dir>/checkpoints/``::

    step-00000120/      one complete checkpoint (files written by the backend and the trainer)
        COMPLETE        written last inside the directory, after every file was fsynced
    latest              text file naming the newest complete checkpoint, replaced atomically

A checkpoint is written to a temporary directory, every file and the directory are fsynced, the
COMPLETE marker is written, and the directory is renamed into place; only then is ``latest``
rewritten (temp file, fsync, rename). A crash at any point leaves either the old or the new
checkpoint fully usable, and temporary leftovers are removed on the next start.

With several ranks (:meth:`CheckpointManager.save_all_ranks`) every rank writes its own part into
``rank-NNNNN/`` of the shared temporary directory and marks it ``DONE``; only when every rank has
(a collective) does rank 0 check all the marks, write COMPLETE (naming the world size) and publish.
A checkpoint that only some ranks wrote stays a temporary directory: never used, removed on the
next start.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
RANK_DONE = "DONE"
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


def rank_dir(path: Path, rank: int) -> Path:
    return path / f"rank-{rank:05d}"


def is_complete(path: Path) -> bool:
    """COMPLETE is there and, for a checkpoint of several ranks, every rank's part is marked done."""
    marker = path / COMPLETE
    if not marker.is_file():
        return False
    parts = marker.read_text(encoding="utf-8").split()
    ranks = int(parts[1]) if len(parts) > 1 else 0
    return all((rank_dir(path, r) / RANK_DONE).is_file() for r in range(ranks))


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

    def save_all_ranks(
        self,
        step: int,
        write_main: Callable[[Path], None],
        write_rank: Callable[[Path], None],
        *,
        rank: int,
        world_size: int,
        barrier: Callable[[], None],
    ) -> Path:
        """A checkpoint every rank writes (call on every rank): rank 0 makes the temporary
        directory, each rank fills ``rank-NNNNN/`` with ``write_rank`` and rank 0 also the shared
        part with ``write_main`` (which may run collectives, so every rank calls it: the others get
        None-returning writes to a directory they never publish). Published by rank 0 only after a
        barrier proves every rank finished, so no partial checkpoint is ever named complete."""
        final = self.root / f"{PREFIX}{step:08d}"
        tmp = self.root / f".tmp-{final.name}"  # one name all ranks agree on
        if rank == 0:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        barrier()
        own = rank_dir(tmp, rank)
        own.mkdir()
        write_main(tmp)
        write_rank(own)
        _fsync_tree(own)
        (own / RANK_DONE).write_text(f"{step}\n", encoding="utf-8")
        _fsync_path(own / RANK_DONE)
        _fsync_path(own)
        barrier()  # every rank's part is on disk
        if rank == 0:
            missing = [r for r in range(world_size) if not (rank_dir(tmp, r) / RANK_DONE).is_file()]
            if missing:
                raise RuntimeError(f"checkpoint {final.name}: ranks {missing} did not write their part")
            self._publish(tmp, final, step, f"{step} {world_size}\n")
        barrier()
        return final

    def _publish(self, tmp: Path, final: Path, step: int, complete: str) -> None:
        _fsync_tree(tmp)
        (tmp / COMPLETE).write_text(complete, encoding="utf-8")
        _fsync_path(tmp / COMPLETE)
        _fsync_path(tmp)
        if final.exists():
            trash = self.root / f".tmp-trash-{final.name}-{os.getpid()}"
            final.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        tmp.rename(final)
        _fsync_path(self.root)
        self._write_latest(final.name)
        self._prune()

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
