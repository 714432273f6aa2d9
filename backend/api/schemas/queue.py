"""The annotator's side of the API: tasks (leased comparisons) and annotations.

Everything is in the terms the annotator saw: `left` and `right`. The server maps them to the
comparison's canonical order using the A/B order it drew for this assignment.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from backend.api.schemas.common import StrictModel
from backend.domain.enums import AssignmentState
from backend.domain.labels import Position, ResponseLabel, ShownAnswer
from backend.domain.taxonomy import MAX_SEVERITY


class TaskRead(BaseModel):
    assignment_id: int
    comparison_id: int
    project_id: int
    lease_token: str
    state: AssignmentState
    expires_at: dt.datetime = Field(description="the lease ends here; a late submit may get 409")
    prompt: str
    left: str = Field(description="the response shown on the left")
    right: str = Field(description="the response shown on the right")


class ResponseLabelIn(StrictModel):
    is_safe: bool
    harm_categories: list[str] = Field(
        default_factory=list, max_length=64, description="category keys; must be empty for a safe response"
    )
    severity: int = Field(0, ge=0, le=MAX_SEVERITY, description="0 for safe, 1-3 for unsafe")

    def to_domain(self) -> ResponseLabel:
        return ResponseLabel(self.is_safe, tuple(self.harm_categories), self.severity)


class AnnotationSubmit(StrictModel):
    left: ResponseLabelIn
    right: ResponseLabelIn
    helpfulness: Position = Field(description="which response is more helpful")
    harmlessness: Position = Field(description="which response is more harmless")
    confidence: int | None = Field(None, ge=1, le=5)
    rationale: str = Field("", max_length=4000)
    time_spent_ms: int = Field(0, ge=0, le=24 * 3600 * 1000)

    def to_domain(self) -> ShownAnswer:
        return ShownAnswer(
            left=self.left.to_domain(),
            right=self.right.to_domain(),
            helpfulness=self.helpfulness,
            harmlessness=self.harmlessness,
            confidence=self.confidence,
            rationale=self.rationale,
            time_spent_ms=self.time_spent_ms,
        )


class ResponseLabelRead(BaseModel):
    is_safe: bool
    harm_categories: list[str]
    severity: int


class WarningRead(BaseModel):
    code: str
    message: str


class AnnotationRead(BaseModel):
    id: int
    assignment_id: int
    comparison_id: int
    project_id: int
    left: ResponseLabelRead
    right: ResponseLabelRead
    helpfulness: Position
    harmlessness: Position
    confidence: int | None
    rationale: str
    time_spent_ms: int
    warnings: list[WarningRead] = Field(description="consistency warnings; the annotation is stored anyway")
    created_at: dt.datetime


class SubmitAndNextRead(BaseModel):
    """The stored annotation and the next pair, in one round trip: what the annotator page needs
    after every submit."""

    annotation: AnnotationRead
    next: TaskRead | None = Field(description="the next leased pair; null when none is left for you")
