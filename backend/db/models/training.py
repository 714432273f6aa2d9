"""The training loop's records: rounds, training jobs, model artifacts and their metrics."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, created_at_column, pg_enum
from backend.domain.enums import ArtifactKind, JobKind, JobState, RoundState


class Round(Base):
    """One turn of the Safe RLHF loop: collect preferences, train RM and CM, run PPO-Lag, evaluate."""

    __tablename__ = "round"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[RoundState] = mapped_column(
        pg_enum(RoundState, "round_state"), default=RoundState.draft, server_default="draft"
    )
    # Stage settings for this round (thresholds, λ settings, epochs, ...), validated at launch.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # model_artifact and dataset_snapshot point back at round, so these two keys are added after
    # the tables exist (use_alter) to break the cycle.
    base_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_artifact.id", ondelete="SET NULL", use_alter=True)
    )
    snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_snapshot.id", ondelete="SET NULL", use_alter=True)
    )
    error: Mapped[str | None] = mapped_column(Text)
    # The per-round report row (backend/services/rounds/reports.py), stored when the round completes.
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # What the round produced; use_alter for the same cycle as base_policy_id.
    policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_artifact.id", ondelete="SET NULL", use_alter=True)
    )
    reward_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_artifact.id", ondelete="SET NULL", use_alter=True)
    )
    cost_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_artifact.id", ondelete="SET NULL", use_alter=True)
    )
    # The stage that failed (a RoundState value), so a retry knows where to resume.
    failed_stage: Mapped[str | None] = mapped_column(String(30))
    launched_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    collection_closed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = created_at_column()
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class TrainingJob(Base):
    """A stage run by a worker. Postgres is the truth: the Celery message only wakes a worker, which
    claims the job with a conditional UPDATE and keeps its lease alive by heartbeat."""

    __tablename__ = "training_job"
    __table_args__ = (
        Index("ix_training_job_claim", "created_at", postgresql_where=text("state = 'queued'")),
        Index(
            "ix_training_job_running_lease", "lease_expires_at", postgresql_where=text("state = 'running'")
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("round.id", ondelete="CASCADE"), index=True)
    kind: Mapped[JobKind] = mapped_column(pg_enum(JobKind, "job_kind"))
    state: Mapped[JobState] = mapped_column(
        pg_enum(JobState, "job_state"), default=JobState.queued, server_default="queued"
    )
    queue: Mapped[str] = mapped_column(String(50), default="gpu", server_default="gpu")
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    worker_id: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # The stage's config dataclass, serialised; the worker writes it as run.json for the subprocess.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # sha256 of (kind, config, input hashes): a finished job with the same key is not re-run.
    inputs_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    # Opaque key of the last complete checkpoint under the artifacts root.
    checkpoint_key: Mapped[str | None] = mapped_column(String(300))
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    # Role -> opaque id ({"snapshot_id": 3, "base_model_id": 5}); the worker resolves them to paths.
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    gpus: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    nodes: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    current_step: Mapped[int | None] = mapped_column(Integer)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    eta_s: Mapped[float | None] = mapped_column(Float)
    log_tail: Mapped[str | None] = mapped_column(Text)
    # Ingest cursor: the last events.jsonl seq stored, so a re-read of the file stores nothing twice.
    ingest_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The job's directory under the artifacts root (jobs/<id>), chosen by the server.
    output_key: Mapped[str | None] = mapped_column(String(300))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    # When the wake-up message was last sent; the reaper re-sends it for a queued job left too long.
    published_at: Mapped[dt.datetime | None]
    cancelled_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = created_at_column()
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class ModelArtifact(Base):
    """A trained policy, reward model or cost model, with its full lineage."""

    __tablename__ = "model_artifact"
    __table_args__ = (UniqueConstraint("storage_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ArtifactKind] = mapped_column(pg_enum(ArtifactKind, "artifact_kind"))
    name: Mapped[str] = mapped_column(String(200))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("round.id", ondelete="SET NULL"), index=True)
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_snapshot.id", ondelete="SET NULL"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_artifact.id", ondelete="SET NULL"))
    training_job_id: Mapped[int | None] = mapped_column(ForeignKey("training_job.id", ondelete="SET NULL"))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # sha256 over the weight files; the storage key is chosen by the server.
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300))
    # The training snapshot's content hash, kept even if the snapshot row goes away.
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # [{"path", "size", "sha256"}] of every file of the model directory.
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    created_at: Mapped[dt.datetime] = created_at_column()


class Metric(Base):
    __tablename__ = "metric"
    # Unique, so ingestion upserts: a resumed run re-emits the steps after its last checkpoint.
    __table_args__ = (UniqueConstraint("job_id", "name", "step"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_job.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = created_at_column()
