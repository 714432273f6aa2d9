"""The model registry: bring a Hugging Face directory in under a server-chosen key, and find it again.

A model directory is copied, never referenced in place: the registry owns its copy under
`models/<uuid hex>` in the artifacts root (docs/design/reliability.md C11), so a
later change to the source cannot alter a registered model. Weights must be safetensors; pickled
checkpoints (.bin, .pt, ...) run code when loaded and are refused. Every file's size and sha256 is
recorded, so a download can be verified file by file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.config import Settings
from backend.db.models import DatasetSnapshot, Metric, ModelArtifact, TrainingJob
from backend.domain.enums import ArtifactKind
from backend.domain.errors import InvalidInput, NotFound
from backend.services.storage import resolve_artifact

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})
WEIGHT_SUFFIX = ".safetensors"
CHUNK = 1 << 20


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def scan_model_dir(source_dir: Path) -> list[Path]:
    """The directory's files, relative and sorted, after the checks every registered model passes.
    Raises InvalidInput with a one-line reason otherwise."""
    if not source_dir.is_dir():
        raise InvalidInput(f"'{source_dir}' is not a directory")
    files: list[Path] = []
    for path in sorted(source_dir.rglob("*")):
        rel = path.relative_to(source_dir)
        if path.is_symlink():
            raise InvalidInput(f"'{rel}' is a symbolic link; copy the real file into the model directory")
        if path.is_dir():
            continue
        if not path.is_file():
            raise InvalidInput(f"'{rel}' is not a regular file")
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise InvalidInput(
                f"'{rel}' is a pickle checkpoint, which runs code when loaded; "
                "save the model with safetensors (save_pretrained(..., safe_serialization=True))"
            )
        files.append(rel)
    if Path("config.json") not in files:
        raise InvalidInput(f"'{source_dir}' has no config.json; is it a Hugging Face model directory?")
    if not any(f.suffix == WEIGHT_SUFFIX for f in files):
        raise InvalidInput(f"'{source_dir}' has no *.safetensors weights")
    return files


def weights_sha256(files: list[dict[str, Any]]) -> str:
    """One hash over the weight files: sha256 of their "path:sha256" lines in path order, so it
    changes when any weight file changes and never depends on tokenizer or config files."""
    lines = "".join(f"{f['path']}:{f['sha256']}\n" for f in files if f["path"].endswith(WEIGHT_SUFFIX))
    return hashlib.sha256(lines.encode()).hexdigest()


def _copy_into(source_dir: Path, rels: list[Path], tmp: Path) -> list[dict[str, Any]]:
    """Copy and hash each file, hashing the copy (what the registry will serve), fsynced."""
    records = []
    for rel in rels:
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source_dir / rel, target)
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())
        size = target.stat().st_size
        records.append({"path": rel.as_posix(), "size": size, "sha256": _sha256_file(target)})
    return records


def _publish(tmp: Path, final_dir: Path) -> None:
    """Make the fully written copy visible under its final name in one rename (nested
    directories allowed, unlike storage.publish_directory, which is for flat snapshot folders)."""
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final_dir)
    fd = os.open(final_dir.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def register_model_dir(
    *,
    session: Session,
    settings: Settings,
    kind: ArtifactKind,
    source_dir: Path,
    name: str,
    project_id: int | None = None,
    round_id: int | None = None,
    snapshot_id: int | None = None,
    parent_id: int | None = None,
    training_job_id: int | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelArtifact:
    """Validate, copy and record a model directory. Flushes the new row; the caller commits. A
    copy whose row is never committed is an unreferenced folder under a fresh key, never a row
    without its files."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a model name must have 1 to 200 characters")
    snapshot_sha = None
    if snapshot_id is not None:
        snapshot = session.get(DatasetSnapshot, snapshot_id)
        if snapshot is None:
            raise NotFound(f"snapshot {snapshot_id} not found")
        snapshot_sha = snapshot.content_sha256
    rels = scan_model_dir(source_dir)
    root = Path(settings.artifacts_dir)
    key = f"models/{uuid.uuid4().hex}"
    (root / "models").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root / "models"))
    try:
        records = _copy_into(source_dir, rels, tmp)
        _publish(tmp, root / key)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    artifact = ModelArtifact(
        project_id=project_id,
        kind=kind,
        name=name,
        round_id=round_id,
        snapshot_id=snapshot_id,
        snapshot_sha256=snapshot_sha,
        parent_id=parent_id,
        training_job_id=training_job_id,
        config=config or {},
        metrics=metrics or {},
        sha256=weights_sha256(records),
        storage_key=key,
        size_bytes=sum(r["size"] for r in records),
        files=records,
    )
    session.add(artifact)
    session.flush()
    return artifact


def get_model(*, session: Session, model_id: int) -> ModelArtifact:
    model = session.get(ModelArtifact, model_id)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    return model


def resolve_model_dir(*, session: Session, settings: Settings, model_id: int) -> Path:
    """The model's directory on this host, re-checked to lie inside the artifacts root."""
    model = get_model(session=session, model_id=model_id)
    path = resolve_artifact(Path(settings.artifacts_dir), model.storage_key)
    if not path.is_dir():
        raise NotFound(f"the files of model {model_id} are missing from the artifacts directory")
    return path


def list_models(
    *,
    session: Session,
    kind: ArtifactKind | None = None,
    project_id: int | None = None,
    round_id: int | None = None,
    training_job_id: int | None = None,
    limit: int = 200,
) -> list[ModelArtifact]:
    query = select(ModelArtifact).order_by(ModelArtifact.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(ModelArtifact.kind == kind)
    if project_id is not None:
        query = query.where(ModelArtifact.project_id == project_id)
    if round_id is not None:
        query = query.where(ModelArtifact.round_id == round_id)
    if training_job_id is not None:
        query = query.where(ModelArtifact.training_job_id == training_job_id)
    return list(session.scalars(query))


def models_trained_on_snapshot(*, session: Session, snapshot_id: int) -> list[ModelArtifact]:
    query = select(ModelArtifact).where(ModelArtifact.snapshot_id == snapshot_id).order_by(ModelArtifact.id)
    return list(session.scalars(query))


def list_models_of_job(*, session: Session, job_id: int) -> list[ModelArtifact]:
    """The models a training job registered, in the order it registered them."""
    query = select(ModelArtifact).where(ModelArtifact.training_job_id == job_id).order_by(ModelArtifact.id)
    return list(session.scalars(query))


def list_policies(*, session: Session, project_id: int) -> list[ModelArtifact]:
    """Policies a round of the project may start from: its own and the shared ones, newest first."""
    query = (
        select(ModelArtifact)
        .where(
            ModelArtifact.kind == ArtifactKind.policy,
            (ModelArtifact.project_id == project_id) | ModelArtifact.project_id.is_(None),
        )
        .order_by(ModelArtifact.id.desc())
    )
    return list(session.scalars(query))


def model_file_path(*, settings: Settings, model: ModelArtifact, rel: str) -> Path:
    """One recorded file of a model; only paths listed in the row are served."""
    if rel not in {f["path"] for f in model.files}:
        raise NotFound(f"model {model.id} has no file '{rel}'")
    base = resolve_artifact(Path(settings.artifacts_dir), model.storage_key)
    path = (base / rel).resolve()
    if base not in path.parents or path.is_symlink() or not path.is_file():
        raise NotFound(f"model {model.id} has no file '{rel}'")
    return path


def _final_metrics(session: Session, job_id: int) -> dict[str, float]:
    """Each metric's value at its last step: what the training run ended with."""
    latest = (
        select(Metric.name, func.max(Metric.step).label("step"))
        .where(Metric.job_id == job_id)
        .group_by(Metric.name)
        .subquery()
    )
    rows = session.execute(
        select(Metric.name, Metric.value)
        .join(latest, (Metric.name == latest.c.name) & (Metric.step == latest.c.step))
        .where(Metric.job_id == job_id)
    )
    return {name: value for name, value in rows}


def model_lineage(*, session: Session, model: ModelArtifact) -> dict[str, Any]:
    """Where a model came from: the snapshot (and its votes) it was trained on, its parent, the
    job that trained it with that job's config and final metrics, and the models derived from it."""
    snapshot = session.get(DatasetSnapshot, model.snapshot_id) if model.snapshot_id else None
    parent = session.get(ModelArtifact, model.parent_id) if model.parent_id else None
    job = session.get(TrainingJob, model.training_job_id) if model.training_job_id else None
    children = session.scalars(
        select(ModelArtifact).where(ModelArtifact.parent_id == model.id).order_by(ModelArtifact.id)
    )
    return {
        "snapshot": None
        if snapshot is None
        else {
            "id": snapshot.id,
            "project_id": snapshot.project_id,
            "round_id": snapshot.round_id,
            "content_sha256": snapshot.content_sha256,
            "row_count": snapshot.row_count,
            "vote_count": snapshot.vote_count,
            "votes_url": f"/api/v1/snapshots/{snapshot.id}/files/votes.jsonl",
        },
        "snapshot_sha256": model.snapshot_sha256,
        "parent": None if parent is None else {"id": parent.id, "name": parent.name, "kind": parent.kind},
        "training_job": None
        if job is None
        else {
            "id": job.id,
            "kind": job.kind,
            "state": job.state,
            "config": job.config,
            # By id: the reward and cost models a policy stage scored with, its reference, its data.
            "inputs": job.inputs or {},
            "final_metrics": _final_metrics(session, job.id),
            "finished_at": job.finished_at,
        },
        "children": [{"id": c.id, "name": c.name, "kind": c.kind} for c in children],
    }
