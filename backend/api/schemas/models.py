"""The model registry and job metrics."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.domain.enums import ArtifactKind, JobKind, JobState


class ModelFile(BaseModel):
    path: str = Field(description="relative path inside the model directory")
    size: int
    sha256: str


class ModelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: ArtifactKind
    name: str
    project_id: int | None
    round_id: int | None
    snapshot_id: int | None
    snapshot_sha256: str | None = Field(description="content hash of the training snapshot")
    parent_id: int | None
    training_job_id: int | None
    sha256: str = Field(description="sha256 over the weight files' 'path:sha256' lines, in path order")
    size_bytes: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    created_at: dt.datetime


class SnapshotLink(BaseModel):
    id: int
    project_id: int
    round_id: int | None
    content_sha256: str
    row_count: int
    vote_count: int
    votes_url: str = Field(description="the raw votes that trained the model (votes.jsonl)")


class ModelLink(BaseModel):
    id: int
    name: str
    kind: ArtifactKind


class JobLink(BaseModel):
    id: int
    kind: JobKind
    state: JobState
    config: dict[str, Any]
    inputs: dict[str, Any] = Field(
        description="the job's inputs by id: base_model_id, reward_model_id, cost_model_id, snapshot_id, ..."
    )
    final_metrics: dict[str, float] = Field(description="each metric's value at its last step")
    finished_at: dt.datetime | None


class Lineage(BaseModel):
    snapshot: SnapshotLink | None
    snapshot_sha256: str | None
    parent: ModelLink | None
    training_job: JobLink | None
    children: list[ModelLink] = Field(description="models whose parent is this one")


class ModelDetail(ModelRead):
    lineage: Lineage
    files: list[ModelFile]


class MetricsRead(BaseModel):
    job_id: int
    state: JobState
    progress: float
    current_step: int | None
    total_steps: int | None
    eta_s: float | None
    series: dict[str, list[tuple[int, float]]] = Field(
        description="metric name -> [[step, value], ...] for steps after `after_step`, in step order"
    )
    last_step: int | None = Field(description="the largest step returned; pass it back as after_step")
