"""Red-team prompts: submission, review, and the list with its counts."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.api.schemas.common import StrictModel


class RedTeamSubmit(StrictModel):
    prompt: str = Field(min_length=1, max_length=20_000, description="the adversarial prompt")
    harm_category: str = Field(
        min_length=1,
        max_length=200,
        description="the harm category it aims at: a key (or label) of the taxonomy",
    )


class RedTeamReview(StrictModel):
    decision: Literal["accept", "reject"] = Field(
        description="accept: it enters the next launched round; reject: it never does"
    )


class RedTeamPromptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    text: str
    harm_category: str | None
    review_state: str | None = Field(description="pending, accepted or rejected")
    author_id: int | None
    reviewed_by_id: int | None
    reviewed_at: dt.datetime | None
    round_id: int | None = Field(description="the round that used it; null until a round launches with it")
    created_at: dt.datetime


class RedTeamCountsRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    submitted: int
    pending: int
    accepted: int
    rejected: int
    used: int = Field(description="accepted prompts a round has taken into its prompt set")


class RedTeamList(BaseModel):
    prompts: list[RedTeamPromptRead]
    counts: RedTeamCountsRead = Field(description="over the same prompts as the list, before limit/offset")
