"""A registered model as one archive, both ways: streamed out as a tar, and unpacked safely from an
uploaded tar(.gz) or zip.

Out: a plain (uncompressed) POSIX tar built header by header, so a multi-gigabyte model streams in
constant memory with a known Content-Length; safetensors do not compress anyway.
In: an archive comes from a remote client, so every member is checked before anything is written:
regular files and directories only (no links, devices or FIFOs), relative names without `..`,
and a limit on the unpacked size, checked against the headers and again while writing
(docs/design/reliability.md C10, C11).
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from backend.db.models import ModelArtifact
from backend.domain.errors import InvalidInput, PayloadTooLarge

BLOCK = 512
CHUNK = 1 << 20
MAX_MEMBERS = 10_000


def _tar_header(rel: str, size: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(rel)
    info.size = size
    info.mode = 0o644
    info.mtime = int(mtime)
    return info.tobuf(format=tarfile.PAX_FORMAT)


def archive_size(model: ModelArtifact) -> int:
    """The exact length of the archive write_model_archive streams, for Content-Length."""
    total = 2 * BLOCK
    for record in model.files:
        header = _tar_header(str(record["path"]), int(record["size"]), 0)
        total += len(header) + -(-int(record["size"]) // BLOCK) * BLOCK
    return total


def write_model_archive(model: ModelArtifact, model_dir: Path) -> Iterator[bytes]:
    """The model's recorded files as a tar stream. A file whose size changed on disk since it was
    registered stops the stream (the client then sees a truncated download and a hash mismatch)."""
    for record in model.files:
        rel, size = str(record["path"]), int(record["size"])
        path = model_dir / rel
        yield _tar_header(rel, size, 0)
        sent = 0
        with open(path, "rb") as handle:
            while sent < size and (chunk := handle.read(min(CHUNK, size - sent))):
                sent += len(chunk)
                yield chunk
        if sent != size:
            raise OSError(f"model {model.id}: '{rel}' changed size on disk")
        if size % BLOCK:
            yield b"\0" * (BLOCK - size % BLOCK)
    yield b"\0" * (2 * BLOCK)


def _safe_name(name: str) -> PurePosixPath | None:
    """The member's relative path; None for the archive's own root ("." or "./", which
    `tar -C DIR -czf model.tgz .` writes first)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise InvalidInput(f"the archive member '{name}' has an absolute or '..' path; refused")
    return path if path.parts else None


def _copy_limited(source: IO[bytes], target: Path, budget: int) -> int:
    written = 0
    with open(target, "wb") as out:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > budget:
                raise PayloadTooLarge("the unpacked model is larger than MODEL_UPLOAD_MAX_BYTES")
            out.write(chunk)
    return written


def _extract_tar(archive: Path, dest: Path, limit: int) -> None:
    with tarfile.open(archive, mode="r:*") as tar:
        members = tar.getmembers()
        if len(members) > MAX_MEMBERS:
            raise InvalidInput(f"the archive has more than {MAX_MEMBERS} members")
        if sum(m.size for m in members if m.isfile()) > limit:
            raise PayloadTooLarge("the unpacked model is larger than MODEL_UPLOAD_MAX_BYTES")
        used = 0
        for member in members:
            rel = _safe_name(member.name)
            if rel is None and member.isdir():
                continue
            if rel is None:
                raise InvalidInput(f"the archive member '{member.name}' has no name; refused")
            if member.isdir():
                (dest / rel).mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                raise InvalidInput(f"the archive member '{member.name}' is a link or special file; refused")
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None  # a regular file always has data
            used += _copy_limited(source, dest / rel, limit - used)


def _extract_zip(archive: Path, dest: Path, limit: int) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise InvalidInput(f"the archive has more than {MAX_MEMBERS} members")
        used = 0
        for info in infos:
            rel = _safe_name(info.filename)
            if rel is None:
                continue  # the archive's own root directory
            if info.is_dir():
                (dest / rel).mkdir(parents=True, exist_ok=True)
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise InvalidInput(f"the archive member '{info.filename}' is a link; refused")
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source:
                used += _copy_limited(source, dest / rel, limit - used)


def extract_model_archive(archive: Path, dest: Path, *, limit: int) -> Path:
    """Unpack an uploaded tar, tar.gz or zip into `dest` (empty). Returns the model directory:
    `dest` itself, or its only sub-directory when the archive wraps the files in one folder."""
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, dest, limit)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, dest, limit)
        else:
            raise InvalidInput("the upload is not a tar, tar.gz or zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise InvalidInput(f"the archive could not be read ({type(exc).__name__}: {exc})") from None
    entries = list(dest.iterdir()) if dest.exists() else []
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest
