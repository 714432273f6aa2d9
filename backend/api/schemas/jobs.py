"""Training jobs: submission, the job as the API shows it, its log tail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from backend.api.schemas.common import StrictModel
from backend.domain.enums import JobKind, JobState


class JobSubmit(StrictModel):
    kind: JobKind = Field(description="the training stage: sft, reward, cost, ppo, ppo-lag, ...")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="the stage's options, as in run.json, without input paths or output_dir "
        "(`python -m training STAGE --help` lists them)",
    )
    inputs: dict[str, int] = Field(
        default_factory=dict,
        description="opaque ids of the inputs: snapshot_id, base_model_id, reward_model_id, cost_model_id",
    )
    project_id: int | None = None
    round_id: int | None = None
    gpus: int = Field(
        1,
        ge=1,
        le=64,
        description="GPUs of all nodes together (the world size); more than one runs through the "
        "deepspeed launcher",
    )
    nodes: int = Field(
        1, ge=1, le=64, description="hosts, sharing the GPUs evenly; more than one uses a deepspeed hostfile"
    )
    max_attempts: int = Field(3, ge=1, le=20, description="attempts before a crashing job is failed")


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: JobKind
    state: JobState
    project_id: int | None
    round_id: int | None
    config: dict[str, Any]
    inputs: dict[str, Any]
    inputs_sha256: str | None = Field(description="sha256 of kind, config and input content hashes")
    gpus: int
    nodes: int
    attempt: int
    max_attempts: int
    worker_id: str | None
    cancel_requested: bool
    progress: float
    current_step: int | None
    total_steps: int | None
    eta_s: float | None
    error: str | None
    created_by_id: int | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    url: str = Field("", description="the job's page in the web UI")

    @computed_field(description="processes of the run: one per GPU, all nodes together (= gpus)")  # type: ignore[prop-decorator]
    @property
    def world_size(self) -> int:
        return self.gpus


class JobLog(BaseModel):
    job_id: int
    state: JobState
    log_tail: str = Field(description="the last lines of the stage's stderr")
