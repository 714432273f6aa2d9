"""Export: an immutable, content-addressed snapshot of a project's aggregated labels and raw votes.

Files (under `<artifacts>/snapshots/<sha256>/`, a key the server chooses):
`data.jsonl` and `data.parquet` (PKU-SafeRLHF rows), `excluded.jsonl`, `votes.jsonl` and
`votes.parquet` (every raw vote), and `manifest.json` (recipe, counts, per-file hashes).

The snapshot's `content_sha256` is the sha256 of the three JSONL files' hashes, so equal labels and
votes give the same snapshot: exporting twice without new votes returns the existing one. Files
are written to a temporary directory, fsynced and renamed into place before the row is committed;
the row itself can never be updated (a database trigger).
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
    vote_row,
)
from backend.services.storage import publish_directory, resolve_artifact

FORMAT_VERSION = 1
FILES = ("data.jsonl", "data.parquet", "excluded.jsonl", "votes.jsonl", "votes.parquet", "manifest.json")
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


@dataclass(frozen=True)
class SnapshotResult:
    snapshot: DatasetSnapshot
    created: bool


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        for row in rows
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
        )
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .join(ra, ra.id == Comparison.response_a_id)
        .join(rb, rb.id == Comparison.response_b_id)
        .where(Comparison.id.in_(comparison_ids))
    )
    return {row[0]: PairText(*row) for row in session.execute(query)}


def build_rows(session: Session, project: Project, round_id: int | None) -> dict[str, list[dict[str, Any]]]:
    votes = load_votes(session, project_id=project.id)
    weights = weights_of(annotator_stats(votes, load_gold(session, project_id=project.id)))
    aggs = sorted(aggregates(session, project=project, votes=votes), key=lambda a: a.comparison_id)
    texts = _pair_texts(session, [a.comparison_id for a in aggs])
    if round_id is not None:
        aggs = [a for a in aggs if texts[a.comparison_id].round_id == round_id]
        votes = [v for v in votes if v.round_id == round_id]
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
) -> dict[str, str]:
    hashes = {}
    for name in ("data", "excluded", "votes"):
        payload = _jsonl(rows[name])
        (directory / f"{name}.jsonl").write_bytes(payload)
        hashes[f"{name}.jsonl"] = hashlib.sha256(payload).hexdigest()
    pq.write_table(
        pa.Table.from_pylist(rows["data"], schema=data_schema(taxonomy)), directory / "data.parquet"
    )
    pq.write_table(pa.Table.from_pylist(rows["votes"], schema=VOTE_SCHEMA), directory / "votes.parquet")
    return hashes


def _stats(rows: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    return {
        "data_rows": len(rows["data"]),
        "excluded_rows": len(rows["excluded"]),
        "votes": len(rows["votes"]),
        "unsafe_responses": sum(
            (not r["is_response_0_safe"]) + (not r["is_response_1_safe"]) for r in rows["data"]
        ),
    }


def _write_snapshot_dir(
    root: Path,
    key: str,
    sha: str,
    project: Project,
    round_id: int | None,
    rows: dict[str, list[dict[str, Any]]],
) -> int:
    """Write every file to a temporary directory, then publish it under `key` in one rename.
    Returns the total size."""
    (root / "snapshots").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root / "snapshots"))
    try:
        hashes = _write_files(tmp, rows, project.harm_taxonomy)
        manifest = {
            "format_version": FORMAT_VERSION,
            "schema": "PKU-SafeRLHF (v0 fields + v1 fields) with provenance and soft labels",
            "project": {"id": project.id, "name": project.name},
            "round_id": round_id,
            "content_sha256": sha,
            "recipe": RECIPE,
            "taxonomy": project.harm_taxonomy,
            "severity_levels": project.severity_levels,
            "stats": _stats(rows),
            "files": hashes,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        size = sum(f.stat().st_size for f in tmp.iterdir())
        publish_directory(tmp, root / key)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return size


def _find(session: Session, sha: str) -> DatasetSnapshot | None:
    return session.scalar(select(DatasetSnapshot).where(DatasetSnapshot.content_sha256 == sha))


def create_snapshot(
    *, session: Session, actor: User, project: Project, artifacts_dir: Path, round_id: int | None = None
) -> SnapshotResult:
    rows = build_rows(session, project, round_id)
    payloads = {name: _jsonl(rows[name]) for name in ("data", "excluded", "votes")}
    combined = "".join(f"{n}.jsonl:{hashlib.sha256(p).hexdigest()}\n" for n, p in payloads.items())
    sha = hashlib.sha256(combined.encode()).hexdigest()
    existing = _find(session, sha)
    if existing is not None:
        return SnapshotResult(existing, created=False)
    key = f"snapshots/{sha}"
    size = _write_snapshot_dir(Path(artifacts_dir), key, sha, project, round_id, rows)
    snapshot = DatasetSnapshot(
        project_id=project.id,
        round_id=round_id,
        content_sha256=sha,
        storage_key=key,
        row_count=len(rows["data"]),
        vote_count=len(rows["votes"]),
        size_bytes=size,
        recipe=RECIPE,
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
