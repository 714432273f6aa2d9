"""`run_import`: one uploaded file into one project, with a per-row report.

Commit semantics (stated, docs/design/reliability.md / issue 5):

* `on_error="reject_file"` (the default): the file is validated completely first; if any row is
  rejected, nothing is written and the batch is recorded as `rejected` with every reason.
  Otherwise all rows are written in one transaction: the whole file or nothing.
* `on_error="skip_rows"`: the valid rows are written in one transaction and the rejected ones are
  listed in the report.

Either way, rows that add nothing new (same content hash) are counted as duplicates, not errors.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.models import AuditEvent, ImportBatch, Project, Round, User
from backend.domain.enums import ImportKind, ImportStatus
from backend.domain.errors import Conflict, InvalidInput
from backend.domain.taxonomy import category_lookup
from backend.services.imports.bulk import merge_pairs, pair_stage
from backend.services.imports.reading import guess_format, iter_rows
from backend.services.imports.rows import (
    RowError,
    parse_hh,
    parse_pku,
    parse_prompt,
    parse_response,
)
from backend.services.imports.writer import BatchWriter, PairPolicy, WriteStats

logger = logging.getLogger(__name__)

BATCH_ROWS = 500
REPORT_LIMIT = 1000
GOLD_OVERLAP = 1000  # gold items are meant for every annotator (each sees one at most once)
AXES = ("helpfulness", "harmlessness")
PAIR_KINDS = (ImportKind.pku_saferlhf, ImportKind.hh_rlhf)


@dataclass(frozen=True)
class ImportOptions:
    kind: ImportKind
    file_format: str = "auto"  # "jsonl", "csv" or "auto" (from the file name)
    hh_axis: str | None = None  # HH-RLHF: which preference the file holds
    labels: str = "ignore"  # "gold": the file's labels become hidden gold checks
    on_error: str = "reject_file"  # or "skip_rows"
    overlap: int | None = None  # annotations wanted per comparison (default: the project's)
    priority: float = 0.0
    round_id: int | None = None
    source: str | None = None  # default: the file name


def _validate_options(session: Session, project: Project, options: ImportOptions) -> None:
    if options.file_format not in ("auto", "jsonl", "csv"):
        raise InvalidInput("format must be jsonl, csv or auto", code="invalid_option")
    if options.labels not in ("ignore", "gold"):
        raise InvalidInput("labels must be 'ignore' or 'gold'", code="invalid_option")
    if options.labels == "gold" and options.kind not in (ImportKind.pku_saferlhf, ImportKind.hh_rlhf):
        raise InvalidInput(
            "only preference files (PKU-SafeRLHF, HH-RLHF) carry gold labels", code="invalid_option"
        )
    if options.on_error not in ("reject_file", "skip_rows"):
        raise InvalidInput("on_error must be 'reject_file' or 'skip_rows'", code="invalid_option")
    if options.kind is ImportKind.hh_rlhf and options.hh_axis not in AXES:
        raise InvalidInput(
            "Choose the preference axis of this HH-RLHF file: helpfulness or harmlessness "
            "(each HH-RLHF file holds one; hh_axis).",
            code="hh_axis_required",
        )
    if options.overlap is not None and not 1 <= options.overlap <= 1000:
        raise InvalidInput("overlap must be between 1 and 1000", code="invalid_option")
    if options.round_id is not None:
        owner = session.scalar(select(Round.project_id).where(Round.id == options.round_id))
        if owner != project.id:
            raise InvalidInput(
                f"round {options.round_id} is not a round of this project", code="invalid_option"
            )


def _parser(options: ImportOptions, project: Project, source: str) -> Callable[[dict[str, Any]], Any]:
    gold = options.labels == "gold"
    if options.kind is ImportKind.prompts:
        return lambda data: parse_prompt(data, source)
    if options.kind is ImportKind.responses:
        return lambda data: parse_response(data, source)
    if options.kind is ImportKind.pku_saferlhf:
        lookup = category_lookup(project.harm_taxonomy)
        return lambda data: parse_pku(data, source, gold=gold, lookup=lookup)
    axis = str(options.hh_axis)
    return lambda data: parse_hh(data, source, axis=axis, gold=gold)


def _parsed_rows(
    upload: IO[bytes],
    parse: Callable[[dict[str, Any]], Any],
    fmt: str,
    max_bytes: int,
) -> Iterator[tuple[int, Any, str | None]]:
    for raw in iter_rows(upload, file_format=fmt, max_bytes=max_bytes):
        if raw.error is not None or raw.data is None:
            yield raw.number, None, raw.error or "unreadable row"
            continue
        try:
            yield raw.number, parse(raw.data), None
        except RowError as exc:
            yield raw.number, None, str(exc)


@dataclass
class _Tally:
    total: int = 0
    rejected: int = 0
    listed: list[dict[str, Any]] | None = None

    def reject(self, number: int, reason: str) -> None:
        self.rejected += 1
        if self.listed is None:
            self.listed = []
        if len(self.listed) < REPORT_LIMIT:
            self.listed.append({"row": number, "reason": reason})


def _write(writer: BatchWriter, kind: ImportKind, batch: list[Any]) -> None:
    if not batch:
        return
    if kind is ImportKind.prompts:
        writer.write_prompts(batch)
    elif kind is ImportKind.responses:
        writer.write_responses(batch)
    else:
        writer.write_pairs(batch)


def file_sha256(upload: IO[bytes]) -> tuple[str, int]:
    upload.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := upload.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    upload.seek(0)
    return digest.hexdigest(), size


@dataclass(frozen=True)
class _Source:
    """The uploaded file and how to read it."""

    upload: IO[bytes]
    parse: Callable[[dict[str, Any]], Any]
    file_format: str
    max_bytes: int

    def rows(self) -> Iterator[tuple[int, Any, str | None]]:
        return _parsed_rows(self.upload, self.parse, self.file_format, self.max_bytes)


def _validate_only(source: _Source) -> _Tally:
    tally = _Tally()
    for number, _, error in source.rows():
        tally.total += 1
        if error is not None:
            tally.reject(number, error)
    if tally.total == 0:
        raise InvalidInput("the file holds no rows", code="empty_file")
    return tally


def _policy(project: Project, options: ImportOptions) -> PairPolicy:
    return PairPolicy(
        overlap=options.overlap or project.default_overlap,
        gold_overlap=GOLD_OVERLAP,
        priority=options.priority,
        round_id=options.round_id,
    )


def _no_rows(session: Session) -> InvalidInput:
    session.rollback()
    return InvalidInput("the file holds no rows", code="empty_file")


def _write_rows(
    session: Session, project: Project, options: ImportOptions, source: _Source
) -> tuple[_Tally, WriteStats]:
    """Prompts and responses, in batches (they are small files: a few thousand prompts)."""
    writer = BatchWriter(session, project.id, _policy(project, options))
    tally = _Tally()
    batch: list[Any] = []
    try:
        for number, row, error in source.rows():
            tally.total += 1
            if error is not None:
                tally.reject(number, error)
                continue
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                _write(writer, options.kind, batch)
                batch = []
        _write(writer, options.kind, batch)
        if options.kind is ImportKind.responses:
            writer.pair_touched_prompts()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            "another import added the same items at the same time; run this import again", code="import_race"
        ) from exc
    if tally.total == 0:
        raise _no_rows(session)
    return tally, writer.stats


def _write_pairs(
    session: Session, project: Project, options: ImportOptions, source: _Source
) -> tuple[_Tally, WriteStats | None]:
    """Preference pairs in one pass: every valid row is staged by COPY while the file is read
    (bulk.py), and merged only when the file is acceptable. Stats are None when it is not."""
    tally = _Tally()
    with pair_stage(session) as stage:
        for number, row, error in source.rows():
            tally.total += 1
            if error is not None:
                tally.reject(number, error)
            else:
                stage.add(row)
    if tally.total == 0:
        raise _no_rows(session)
    if tally.rejected and options.on_error == "reject_file":
        session.rollback()
        return tally, None
    return tally, merge_pairs(session, project.id, _policy(project, options), stage.rows)


def run_import(
    *,
    session: Session,
    actor: User,
    project: Project,
    options: ImportOptions,
    upload: IO[bytes],
    filename: str,
    max_bytes: int,
    bulk_pairs: bool = True,
) -> ImportBatch:
    """`bulk_pairs=False` writes pairs with the batch writer, the reference that the bulk path is
    tested against (tests/backend/test_import_bulk.py) and measured against (benchmarks)."""
    _validate_options(session, project, options)
    name = PurePath(filename.replace("\\", "/")).name[:300] or "upload"  # metadata only, never a path
    fmt = guess_format(name) if options.file_format == "auto" else options.file_format
    sha, size = file_sha256(upload)
    source = _Source(upload, _parser(options, project, (options.source or name)[:200]), fmt, max_bytes)
    record = _Recorder(session, actor, project.id, options, name, sha, size)
    if bulk_pairs and options.kind in PAIR_KINDS:
        tally, stats = _write_pairs(session, project, options, source)
        if stats is None:
            return record(tally, None, ImportStatus.rejected)
        return record(tally, stats, ImportStatus.committed)
    if options.on_error == "reject_file":
        checked = _validate_only(source)
        if checked.rejected:
            session.rollback()
            return record(checked, None, ImportStatus.rejected)
    tally, written = _write_rows(session, project, options, source)
    return record(tally, written, ImportStatus.committed)


@dataclass(frozen=True)
class _Recorder:
    """Records the import batch, its report and its audit event, and commits."""

    session: Session
    actor: User
    project_id: int
    options: ImportOptions
    name: str
    sha: str
    size: int

    def __call__(self, tally: _Tally, stats: WriteStats | None, status: ImportStatus) -> ImportBatch:
        return _record(self, tally, stats, status)


def _record(rec: _Recorder, tally: _Tally, stats: WriteStats | None, status: ImportStatus) -> ImportBatch:
    session, actor, project_id, options = rec.session, rec.actor, rec.project_id, rec.options
    accepted = tally.total - tally.rejected if status is ImportStatus.committed else 0
    duplicates = stats.duplicate_rows if stats else 0
    batch = ImportBatch(
        project_id=project_id,
        kind=options.kind,
        status=status,
        filename=rec.name,
        file_sha256=rec.sha,
        size_bytes=rec.size,
        total_rows=tally.total,
        accepted_rows=accepted,
        rejected_rows=tally.rejected,
        duplicate_rows=duplicates,
        report={
            # Rows that added something; duplicates were valid but already there (or earlier in
            # the file), so "imported" never counts them (a re-import imports 0 rows).
            "imported": accepted - duplicates,
            "rejected": tally.listed or [],
            "rejected_listed": len(tally.listed or []),
            "created": stats.as_dict() if stats else {"prompts": 0, "responses": 0, "comparisons": 0},
            "options": {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(options).items()},
            "semantics": "whole file or nothing" if options.on_error == "reject_file" else "valid rows only",
        },
        created_by_id=actor.id,
    )
    session.add(batch)
    session.flush()
    session.add(
        AuditEvent(
            actor_id=actor.id,
            action=f"import.{status.value}",
            object_type="import_batch",
            object_id=batch.id,
            detail={"project_id": project_id, "kind": options.kind.value, "rows": tally.total},
        )
    )
    session.commit()
    logger.info("import %s of %s into project %s: %s", batch.id, rec.name, project_id, status.value)
    return batch
