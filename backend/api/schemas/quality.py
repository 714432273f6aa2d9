"""The quality report: agreement per axis and round, and per-annotator figures."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AgreementRead(BaseModel):
    round: str = Field(description="'all', 'none' (no round) or 'round N'")
    axis: str = Field(description="helpfulness, harmlessness or safety (per response)")
    units: int
    alpha: float | None = Field(description="Krippendorff's alpha, nominal; null when undefined")
    percent_agreement: float | None = Field(description="share of agreeing annotator pairs")


class RateRead(BaseModel):
    correct: int
    total: int
    rate: float | None


class CategoryErrorsRead(BaseModel):
    category: str
    hits: int
    missed: int
    false_alarms: int


class AnnotatorQualityRead(BaseModel):
    user_id: int
    email: str
    display_name: str
    annotations: int
    gold_items: int
    gold_helpfulness: RateRead
    gold_harmlessness: RateRead
    gold_safety: RateRead
    missed_unsafe: int = Field(description="gold unsafe, judged safe")
    false_alarm_unsafe: int = Field(description="gold safe, judged unsafe")
    categories: list[CategoryErrorsRead]
    agreement_with_others_helpfulness: RateRead
    agreement_with_others_harmlessness: RateRead
    left_rate: float | None = Field(description="share of strict preferences given to the left response")
    position_bias_p: float | None
    position_biased: bool
    inconsistency_rate: float | None
    median_time_ms: int | None
    reliability: float
    weight: float


class QualityRead(BaseModel):
    project_id: int
    votes: int
    comparisons_with_votes: int
    disagreements: int
    adjudicated: int
    ties: dict[str, int]
    agreement: list[AgreementRead]
    annotators: list[AnnotatorQualityRead]
