"""Projects, their taxonomy and members."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from backend.api.schemas.common import StrictModel


class HarmCategory(BaseModel):
    key: str = Field(max_length=64, description="stable id stored in annotations, e.g. 'violence'")
    label: str = Field(max_length=200, description="shown to annotators; the key of export category dicts")
    short: str | None = Field(None, max_length=40, description="compact name for the annotator's chips")
    description: str = Field("", max_length=1000)


class SeverityLevel(BaseModel):
    level: int = Field(ge=0, le=3, description="0 = safe; 1..3 increasing severity")
    label: str = Field(max_length=100)
    description: str = Field("", max_length=1000)


class ProjectRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    guidelines_md: str
    harm_taxonomy: list[HarmCategory]
    severity_levels: list[SeverityLevel]
    default_overlap: int
    gold_rate: float
    lease_seconds: int
    created_at: dt.datetime


class ProjectCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    guidelines_md: str = Field("", max_length=100_000, description="Markdown shown to annotators")
    harm_taxonomy: list[HarmCategory] | None = Field(
        None, description="default: the 14 BeaverTails categories"
    )
    severity_levels: list[SeverityLevel] | None = Field(
        None, description="default: safe, minor, moderate, severe"
    )
    default_overlap: int = Field(3, ge=1, le=1000, description="annotations wanted per comparison (k)")
    gold_rate: float = Field(0.1, ge=0, le=1, description="share of claims served from hidden gold items")
    lease_seconds: int = Field(600, ge=30, le=7 * 24 * 3600)


class ProjectUpdate(StrictModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    guidelines_md: str | None = Field(None, max_length=100_000)
    harm_taxonomy: list[HarmCategory] | None = None
    severity_levels: list[SeverityLevel] | None = None
    default_overlap: int | None = Field(None, ge=1, le=1000)
    gold_rate: float | None = Field(None, ge=0, le=1)
    lease_seconds: int | None = Field(None, ge=30, le=7 * 24 * 3600)


class MemberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    display_name: str
    role: str


class ProgressRead(BaseModel):
    project_id: int
    submitted_by_me: int = Field(description="your submitted annotations in this project")
    submitted_by_me_today: int
    skipped_by_me: int
    available_to_me: int = Field(description="comparisons you could still be given (excluding hidden checks)")
    comparisons_open: int
    comparisons_complete: int
