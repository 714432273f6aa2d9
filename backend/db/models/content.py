"""What gets annotated: prompts, model responses, and comparisons of two responses to one prompt."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db.base import Base, created_at_column, pg_enum
from backend.domain.enums import ComparisonStatus


class Prompt(Base):
    __tablename__ = "prompt"
    __table_args__ = (UniqueConstraint("project_id", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the normalised text
    source: Mapped[str] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list, server_default="{}")
    is_red_team: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    harm_category: Mapped[str | None] = mapped_column(String(100))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("round.id", ondelete="SET NULL"), index=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # Red-team intake: who wrote it and its review ('pending' | 'accepted' | 'rejected'; null for
    # imported prompts). An accepted red-team prompt with no round enters the next launched round.
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    review_state: Mapped[str | None] = mapped_column(String(20))
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    reviewed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = created_at_column()


class Response(Base):
    __tablename__ = "response"
    __table_args__ = (UniqueConstraint("prompt_id", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompt.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(200))
    model_artifact_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_artifact.id", ondelete="SET NULL"), index=True
    )
    round_id: Mapped[int | None] = mapped_column(ForeignKey("round.id", ondelete="SET NULL"), index=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[dt.datetime] = created_at_column()

    prompt: Mapped[Prompt] = relationship()


class Comparison(Base):
    """Two responses to one prompt, to be annotated by up to `overlap_target` annotators."""

    __tablename__ = "comparison"
    __table_args__ = (
        CheckConstraint("response_a_id <> response_b_id", name="distinct_responses"),
        CheckConstraint("overlap_target >= 1", name="overlap_positive"),
        CheckConstraint("submitted_count >= 0", name="submitted_nonnegative"),
        CheckConstraint("active_count >= 0", name="active_nonnegative"),
        UniqueConstraint("response_a_id", "response_b_id"),
        # The claim query scans the open comparisons of one pool (gold or not) of a project by
        # priority, so the index leads with both.
        Index(
            "ix_comparison_claim_pool",
            "project_id",
            "is_gold",
            text("priority DESC"),
            "id",
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompt.id", ondelete="CASCADE"), index=True)
    response_a_id: Mapped[int] = mapped_column(ForeignKey("response.id", ondelete="CASCADE"))
    response_b_id: Mapped[int] = mapped_column(ForeignKey("response.id", ondelete="CASCADE"))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("round.id", ondelete="SET NULL"), index=True)
    overlap_target: Mapped[int] = mapped_column(Integer)
    priority: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # Submitted annotations so far, kept in the same transaction as each submit so that the
    # claim query can skip full comparisons without counting rows.
    submitted_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Live leases (assignments in state active). Claim, skip, submit and lease reclamation change
    # it while holding this row's lock, so `submitted_count + active_count <= overlap_target` can be
    # checked without counting rows and without a race (services/assignments.py).
    active_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[ComparisonStatus] = mapped_column(
        pg_enum(ComparisonStatus, "comparison_status"), default=ComparisonStatus.open, server_default="open"
    )
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Known answers of a gold comparison, in canonical (a, b) terms:
    # {"helpfulness": "a"|"b"|"equal", "harmlessness": ..., "a_is_safe": bool, "b_is_safe": bool,
    #  "a_harm_categories": [...], "b_harm_categories": [...]}
    gold_labels: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = created_at_column()

    prompt: Mapped[Prompt] = relationship()
    response_a: Mapped[Response] = relationship(foreign_keys=[response_a_id])
    response_b: Mapped[Response] = relationship(foreign_keys=[response_b_id])
