"""Model directories, training jobs and metrics for the registry and job-page tests."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file
from sqlalchemy.orm import Session

from backend.config import Settings
from backend.db.models import Metric, ModelArtifact, TrainingJob
from backend.domain.enums import ArtifactKind, JobKind, JobState
from backend.services.models import register_model_dir


def fake_model_dir(path: Path, *, seed: int = 0) -> Path:
    """A directory that passes the registry's checks (config.json and safetensors weights), with
    a nested file, as Hugging Face directories sometimes have."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    rng = np.random.default_rng(seed)
    save_file({"w": rng.standard_normal((4, 8)).astype(np.float32)}, str(path / "model.safetensors"))
    (path / "tokenizer.json").write_text('{"version": "1.0"}')
    (path / "extra").mkdir(exist_ok=True)
    (path / "extra" / "notes.txt").write_text("nested files travel too\n")
    return path


def tar_gz(directory: Path, *, extra: list[tarfile.TarInfo] | None = None, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for file in sorted(p for p in directory.rglob("*") if p.is_file()):
            tar.add(file, arcname=prefix + file.relative_to(directory).as_posix())
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return buffer.getvalue()


def register_fake(
    session: Session, settings: Settings, tmp: Path, *, kind: ArtifactKind = ArtifactKind.reward, **links: Any
) -> ModelArtifact:
    source = fake_model_dir(tmp / f"src-{kind.value}-{len(list(tmp.iterdir()))}")
    model = register_model_dir(
        session=session, settings=settings, kind=kind, source_dir=source, name=source.name, **links
    )
    session.commit()
    return model


def make_job(session: Session, *, state: JobState = JobState.running, **values: Any) -> TrainingJob:
    defaults: dict[str, Any] = {
        "kind": JobKind.reward,
        "config": {"epochs": 1, "learning_rate": 1e-3},
        "attempt": 1 if state != JobState.queued else 0,
        "progress": 0.4,
        "current_step": 40,
        "total_steps": 100,
        "eta_s": 75.0,
        "worker_id": "gpu-worker@host-1" if state != JobState.queued else None,
        "log_tail": "step 40 loss 0.61\n",
    }
    job = TrainingJob(state=state, **{**defaults, **values})
    session.add(job)
    session.commit()
    return job


def add_metrics(session: Session, job: TrainingJob, steps: range, names: tuple[str, ...]) -> None:
    for step in steps:
        for i, name in enumerate(names):
            session.add(Metric(job_id=job.id, step=step, name=name, value=1.0 / (step + 1) + i))
    session.commit()
