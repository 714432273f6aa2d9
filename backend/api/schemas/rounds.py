"""Rounds over REST: creating one, the round as the API shows it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from backend.api.schemas.common import StrictModel
from backend.api.schemas.jobs import JobRead
from backend.domain.enums import RoundState


class RoundCreate(StrictModel):
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="the round's settings (start from GET .../rounds/presets); checked field by field",
    )
    launch: bool = Field(True, description="launch at once (false: leave it a draft)")


class CollectionProgress(BaseModel):
    decided: int = Field(description="comparisons of the round with every annotation asked for")
    total: int
    target: int | None = Field(description="decided pairs that close collection; none: closed by hand")


class RoundModels(BaseModel):
    base_policy_id: int | None
    reward_model_id: int | None
    cost_model_id: int | None
    policy_id: int | None
    snapshot_id: int | None


class RoundRead(BaseModel):
    id: int
    project_id: int
    number: int
    state: RoundState
    stage: str = Field(description="what the round is doing now, in words")
    settings: dict[str, Any]
    error: str | None
    failed_stage: str | None
    launched_by_id: int | None
    models: RoundModels
    collection: CollectionProgress
    jobs: list[JobRead]
    report: dict[str, Any]
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    collection_closed_at: dt.datetime | None
    url: str = Field("", description="the round's page in the web UI")


class RoundSummary(BaseModel):
    id: int
    project_id: int
    number: int
    state: RoundState
    error: str | None
    failed_stage: str | None
    policy_id: int | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
