"""Export: an immutable, content-addressed snapshot of a project's aggregated labels and raw votes.

Files (under `<artifacts>/snapshots/<sha256>/`, a key the server chooses):
`data.jsonl` and `data.parquet` (PKU-SafeRLHF rows), `excluded.jsonl`, `votes.jsonl` and
`votes.parquet` (every raw vote), and `manifest.json` (recipe, counts, filters, the `datasets`
features of each table, and the sha256 and size of every other file).

JSONL and Parquet hold the same columns in the same order; the Parquet files carry the
Hugging Face features in their schema metadata and the manifest carries the same dict, so
`load_dataset("json", ..., features=...)` and `load_dataset("parquet", ...)` give equal features
and rows (see rows.py, `hf_features`).

The snapshot's `content_sha256` is derived from the project and the file hashes: the sha256 of
the line `project:<id>\n` followed by the lines `<name>:<sha256>\n` of the five data files,
sorted by name. Equal labels and votes in one project give equal files, hence the same snapshot:
exporting twice without new votes returns the existing one. The project is part of the identity
because a snapshot row belongs to one project: two projects with equal files (two empty ones,
say) must not be handed each other's snapshot.
Files are written to a temporary directory, fsynced and renamed into place before the row is
committed; the row itself can never be updated (a database trigger).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from backend.db.models import AuditEvent, Comparison, DatasetSnapshot, Project, Prompt, Response, User
from backend.domain.errors import NotFound
from backend.services.quality.annotators import PRIOR_ACCURACY, PRIOR_STRENGTH, annotator_stats
from backend.services.quality.report import aggregates, weights_of
from backend.services.quality.votes import load_gold, load_votes
from backend.services.snapshots.rows import (
    VOTE_SCHEMA,
    PairText,
    data_row,
    data_schema,
    excluded_row,
    hf_features,
    vote_row,
    with_hf_metadata,
)
from backend.services.storage import publish_directory, resolve_artifact

FORMAT_VERSION = 2  # 2: column order of the schema, hashes of every file, features, filters
DATA_FILES = ("data.jsonl", "data.parquet", "excluded.jsonl", "votes.jsonl", "votes.parquet")
FILES = (*DATA_FILES, "manifest.json")
MEDIA_TYPES = {
    ".jsonl": "application/x-ndjson",
    ".parquet": "application/vnd.apache.parquet",
    ".json": "application/json",
}
RECIPE = {
    "aggregation": "reliability-weighted majority per axis; adjudications override votes",
    "weights": (
        f"log(2p/(1-p)), p = gold accuracy smoothed towards {PRIOR_ACCURACY} "
        f"with {PRIOR_STRENGTH:g} pseudo-items"
    ),
    "ties": "preference ties and 'equal' go to excluded.jsonl; a safety tie resolves to unsafe",
    "categories": "those ticked by >= half the weight of the annotators who judged the response unsafe",
    "severity": "weighted median of the unsafe votes",
    "gold": "gold comparisons are excluded from data and kept in votes (is_gold)",
}
CONTENT_HASH = "sha256 of the lines '<name>:<sha256>\\n' of the files above, sorted by name"


@dataclass(frozen=True)
class SnapshotResult:
    snapshot: DatasetSnapshot
    created: bool


@dataclass(frozen=True)
class ExportFilters:
    round_id: int | None = None  # only this round's comparisons (and votes)
    complete_only: bool = False  # only pairs that got every annotation asked for (k of k), and their votes


def _jsonl(rows: list[dict[str, Any]], columns: list[str] | None = None) -> bytes:
    """One compact JSON object per line, keys in the schema's column order (as in the Parquet)."""
    ordered = rows if columns is None else [{name: row[name] for name in columns} for row in rows]
    return b"".join(
        json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for row in ordered
    )


def _pair_texts(session: Session, comparison_ids: list[int]) -> dict[int, PairText]:
    ra, rb = aliased(Response), aliased(Response)
    query = (
        select(
            Comparison.id,
            Comparison.round_id,
            Prompt.text,
            Prompt.source,
            ra.text,
            rb.text,
            ra.model_name,
            rb.model_name,
            Comparison.submitted_count >= Comparison.overlap_target,
        )
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .join(ra, ra.id == Comparison.response_a_id)
        .join(rb, rb.id == Comparison.response_b_id)
        .where(Comparison.id.in_(comparison_ids))
    )
    return {row[0]: PairText(*row) for row in session.execute(query)}


def build_rows(session: Session, project: Project, filters: ExportFilters) -> dict[str, list[dict[str, Any]]]:
    votes = load_votes(session, project_id=project.id)
    weights = weights_of(annotator_stats(votes, load_gold(session, project_id=project.id)))
    aggs = sorted(aggregates(session, project=project, votes=votes), key=lambda a: a.comparison_id)
    texts = _pair_texts(session, [a.comparison_id for a in aggs])
    if filters.round_id is not None:
        aggs = [a for a in aggs if texts[a.comparison_id].round_id == filters.round_id]
        votes = [v for v in votes if v.round_id == filters.round_id]
    if filters.complete_only:
        aggs = [a for a in aggs if texts[a.comparison_id].complete]
        kept = {a.comparison_id for a in aggs}  # and the gold votes, which weigh the annotators
        votes = [v for v in votes if v.is_gold or v.comparison_id in kept]
    data, excluded = [], []
    for agg in aggs:
        row = data_row(texts[agg.comparison_id], agg, project.harm_taxonomy)
        if row is None:
            excluded.append(excluded_row(texts[agg.comparison_id], agg))
        else:
            data.append(row)
    return {
        "data": data,
        "excluded": excluded,
        "votes": [vote_row(v, weights.get(v.annotator_id, 1.0)) for v in votes],
    }


def _write_files(
    directory: Path, rows: dict[str, list[dict[str, Any]]], taxonomy: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Every data file, and the sha256 and size of each."""
    schemas = {"data": with_hf_metadata(data_schema(taxonomy)), "votes": with_hf_metadata(VOTE_SCHEMA)}
    for name, schema in schemas.items():
        (directory / f"{name}.jsonl").write_bytes(_jsonl(rows[name], schema.names))
        pq.write_table(pa.Table.from_pylist(rows[name], schema=schema), directory / f"{name}.parquet")
    (directory / "excluded.jsonl").write_bytes(_jsonl(rows["excluded"]))
    files = {}
    for name in DATA_FILES:
        payload = (directory / name).read_bytes()
        files[name] = {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    return files


def content_hash(project_id: int, files: dict[str, dict[str, Any]]) -> str:
    lines = f"project:{project_id}\n" + "".join(f"{name}:{files[name]['sha256']}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def _stats(rows: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    return {
        "data_rows": len(rows["data"]),
        "excluded_rows": len(rows["excluded"]),
        "votes": len(rows["votes"]),
        "unsafe_responses": sum(
            (not r["is_response_0_safe"]) + (not r["is_response_1_safe"]) for r in rows["data"]
        ),
    }


def _manifest(
    project: Project, filters: ExportFilters, rows: dict[str, list[dict[str, Any]]], files: dict[str, Any]
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "schema": "PKU-SafeRLHF (v0 fields + v1 fields) with provenance and soft labels",
        "project": {"id": project.id, "name": project.name},
        "round_id": filters.round_id,
        "filters": {"round_id": filters.round_id, "complete_only": filters.complete_only},
        "content_sha256": content_hash(project.id, files),
        "content_sha256_of": CONTENT_HASH,
        "recipe": RECIPE,
        "taxonomy": project.harm_taxonomy,
        "severity_levels": project.severity_levels,
        "stats": _stats(rows),
        "files": files,
        "features": {
            "data": hf_features(data_schema(project.harm_taxonomy)),
            "votes": hf_features(VOTE_SCHEMA),
        },
    }


def _find(session: Session, sha: str) -> DatasetSnapshot | None:
    return session.scalar(select(DatasetSnapshot).where(DatasetSnapshot.content_sha256 == sha))


def _stage(
    root: Path, project: Project, filters: ExportFilters, rows: dict[str, list[dict[str, Any]]]
) -> tuple[Path, dict[str, Any]]:
    """Every file, manifest included, in a temporary directory next to the published ones."""
    (root / "snapshots").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root / "snapshots"))
    try:
        manifest = _manifest(project, filters, rows, _write_files(tmp, rows, project.harm_taxonomy))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, manifest


def create_snapshot(
    *,
    session: Session,
    actor: User,
    project: Project,
    artifacts_dir: Path,
    round_id: int | None = None,
    complete_only: bool = False,
) -> SnapshotResult:
    filters = ExportFilters(round_id, complete_only)
    rows = build_rows(session, project, filters)
    root = Path(artifacts_dir)
    tmp, manifest = _stage(root, project, filters, rows)
    sha = manifest["content_sha256"]
    existing = _find(session, sha)
    if existing is not None:
        shutil.rmtree(tmp, ignore_errors=True)
        return SnapshotResult(existing, created=False)
    key = f"snapshots/{sha}"
    try:
        size = sum(f.stat().st_size for f in tmp.iterdir())
        publish_directory(tmp, root / key)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _record(session, actor, project, filters, rows, key, sha, size)


def _record(
    session: Session,
    actor: User,
    project: Project,
    filters: ExportFilters,
    rows: dict[str, list[dict[str, Any]]],
    key: str,
    sha: str,
    size: int,
) -> SnapshotResult:
    snapshot = DatasetSnapshot(
        project_id=project.id,
        round_id=filters.round_id,
        content_sha256=sha,
        storage_key=key,
        row_count=len(rows["data"]),
        vote_count=len(rows["votes"]),
        size_bytes=size,
        recipe={**RECIPE, "complete_only": filters.complete_only},
        stats=_stats(rows),
        created_by_id=actor.id,
    )
    session.add(snapshot)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()  # the same snapshot was exported concurrently: return that one
        found = _find(session, sha)
        assert found is not None
        return SnapshotResult(found, created=False)
    session.add(
        AuditEvent(
            actor_id=actor.id, action="snapshot.create", object_type="dataset_snapshot", object_id=snapshot.id
        )
    )
    session.commit()
    return SnapshotResult(snapshot, created=True)


def list_snapshots(session: Session, *, project: Project) -> list[DatasetSnapshot]:
    query = (
        select(DatasetSnapshot)
        .where(DatasetSnapshot.project_id == project.id)
        .order_by(DatasetSnapshot.id.desc())
    )
    return list(session.scalars(query))


def open_snapshot_file(
    artifacts_dir: Path, snapshot: DatasetSnapshot, name: str
) -> tuple[IO[bytes], str, int]:
    """A file of a snapshot, by its fixed name. Anything else is 'not found'."""
    if name not in FILES:
        raise NotFound("file not found")
    path = resolve_artifact(Path(artifacts_dir), snapshot.storage_key, name)
    if not path.is_file():
        raise NotFound("file not found")
    media = MEDIA_TYPES[path.suffix]
    return open(path, "rb"), media, path.stat().st_size  # noqa: SIM115 (the response closes it)
