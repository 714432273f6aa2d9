"""Comparisons as reviewers and admins see them: canonical (a, b) terms, votes, aggregates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from backend.api.schemas.common import StrictModel
from backend.domain.enums import Choice, ComparisonStatus
from backend.domain.taxonomy import MAX_SEVERITY


class ComparisonRead(BaseModel):
    id: int
    project_id: int
    prompt_id: int
    response_a_id: int
    response_b_id: int
    round_id: int | None
    overlap_target: int
    priority: float
    submitted_count: int
    active_count: int
    status: ComparisonStatus
    is_gold: bool
    created_at: dt.datetime


class ComparisonPage(BaseModel):
    total: int
    items: list[ComparisonRead]


class ComparisonUpdate(StrictModel):
    overlap_target: int | None = Field(
        None, ge=1, le=1000, description="k; lowering it never admits more than k"
    )
    priority: float | None = Field(None, description="higher is claimed first")
    retired: bool | None = Field(None, description="true withdraws the comparison from the queue")


class PriorityItem(StrictModel):
    id: int
    priority: float


class PrioritiesUpdate(StrictModel):
    items: list[PriorityItem] = Field(min_length=1, max_length=10_000)


class CountRead(BaseModel):
    updated: int


class GoldLabels(StrictModel):
    """Known answers, canonical terms; any subset of the axes."""

    helpfulness: Choice | None = None
    harmlessness: Choice | None = None
    a_is_safe: bool | None = None
    b_is_safe: bool | None = None
    a_harm_categories: list[str] | None = None
    b_harm_categories: list[str] | None = None
    a_severity: int | None = Field(None, ge=0, le=MAX_SEVERITY)
    b_severity: int | None = Field(None, ge=0, le=MAX_SEVERITY)

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (v.value if isinstance(v, Choice) else v)
            for k, v in self.model_dump().items()
            if v is not None
        }


class CanonicalLabelIn(StrictModel):
    is_safe: bool
    harm_categories: list[str] = Field(default_factory=list, max_length=64)
    severity: int = Field(0, ge=0, le=MAX_SEVERITY)


class AdjudicationCreate(StrictModel):
    helpfulness: Choice
    harmlessness: Choice
    a: CanonicalLabelIn
    b: CanonicalLabelIn
    note: str = Field("", max_length=4000)
    promote_to_gold: bool = Field(False, description="also use these labels as a hidden gold check")


class AdjudicationRead(BaseModel):
    id: int
    comparison_id: int
    reviewer_id: int
    helpfulness: Choice
    harmlessness: Choice
    a: CanonicalLabelIn
    b: CanonicalLabelIn
    note: str
    created_at: dt.datetime


class VoteRead(BaseModel):
    annotation_id: int
    comparison_id: int
    annotator_id: int
    annotator_email: str
    weight: float
    a: CanonicalLabelIn
    b: CanonicalLabelIn
    helpfulness: Choice
    harmlessness: Choice
    shown_order: str = Field(description="ab: response a was on the left")
    confidence: int | None
    rationale: str
    time_spent_ms: int
    warnings: list[str]
    created_at: dt.datetime


class AxisAggregateRead(BaseModel):
    label: Choice | None = Field(description="null when tied")
    tie: bool
    shares: dict[str, float]
    votes: dict[str, int]


class SideAggregateRead(BaseModel):
    is_safe: bool
    tie: bool
    unsafe_share: float
    harm_categories: list[str]
    severity: int


class AggregateRead(BaseModel):
    comparison_id: int
    votes: int
    adjudicated: bool
    ties: list[str]
    helpfulness: AxisAggregateRead
    harmlessness: AxisAggregateRead
    a: SideAggregateRead
    b: SideAggregateRead


class AggregatePage(BaseModel):
    total: int
    items: list[AggregateRead]


class ComparisonDetailRead(BaseModel):
    comparison: ComparisonRead
    prompt: str
    response_a: str
    response_b: str
    gold_labels: dict[str, Any] | None
    votes: list[VoteRead]
    aggregate: AggregateRead | None
    adjudications: list[AdjudicationRead]
    disagreeing: list[str]


class ReviewItemRead(BaseModel):
    comparison_id: int
    prompt: str
    votes: int
    disagreeing: list[str]
    ties: list[str]
    adjudicated: bool


class VotePage(BaseModel):
    items: list[VoteRead]
    next_after_id: int | None
