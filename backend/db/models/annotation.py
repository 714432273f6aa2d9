"""Work on comparisons: leased assignments, submitted annotations (raw votes) and adjudications."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db.base import Base, created_at_column, pg_enum
from backend.db.models.content import Comparison
from backend.domain.enums import AssignmentState, Choice, ShownOrder


class Assignment(Base):
    """A lease of one comparison to one annotator. The unique (comparison, annotator) pair is what
    guarantees that nobody is ever given the same comparison twice."""

    __tablename__ = "assignment"
    __table_args__ = (
        UniqueConstraint("comparison_id", "annotator_id"),
        Index("ix_assignment_active_annotator", "annotator_id", postgresql_where=text("state = 'active'")),
        # At most one live lease per annotator and project: a second claim resumes the first.
        Index(
            "uq_assignment_one_active_per_project",
            "annotator_id",
            "project_id",
            unique=True,
            postgresql_where=text("state = 'active'"),
        ),
        Index("ix_assignment_active_expires", "expires_at", postgresql_where=text("state = 'active'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparison.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    # Denormalised from the comparison for the one-live-lease-per-project index.
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    lease_token: Mapped[str] = mapped_column(String(36), unique=True)
    leased_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    state: Mapped[AssignmentState] = mapped_column(
        pg_enum(AssignmentState, "assignment_state"), default=AssignmentState.active, server_default="active"
    )
    # The A/B order shown to this annotator, drawn at random per assignment.
    shown_order: Mapped[ShownOrder] = mapped_column(pg_enum(ShownOrder, "shown_order"))
    finished_at: Mapped[dt.datetime | None]

    comparison: Mapped[Comparison] = relationship()


def _response_label_checks(side: str) -> list[CheckConstraint]:
    return [
        CheckConstraint(f"{side}_severity BETWEEN 0 AND 3", name=f"{side}_severity_range"),
        # A response marked safe carries no harm categories and no severity.
        CheckConstraint(
            f"NOT {side}_is_safe OR ({side}_severity = 0 AND cardinality({side}_harm_categories) = 0)",
            name=f"{side}_safe_has_no_harm",
        ),
    ]


class Annotation(Base):
    """One annotator's raw vote on one comparison, kept forever, in canonical (a, b) terms."""

    __tablename__ = "annotation"
    __table_args__ = (
        UniqueConstraint("comparison_id", "annotator_id"),
        UniqueConstraint("annotator_id", "idempotency_key"),
        CheckConstraint("confidence IS NULL OR confidence BETWEEN 1 AND 5", name="confidence_range"),
        CheckConstraint("time_spent_ms >= 0", name="time_spent_nonnegative"),
        *_response_label_checks("a"),
        *_response_label_checks("b"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparison.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id", ondelete="CASCADE"), unique=True)
    a_is_safe: Mapped[bool] = mapped_column(Boolean)
    a_harm_categories: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    a_severity: Mapped[int] = mapped_column(SmallInteger, default=0)
    b_is_safe: Mapped[bool] = mapped_column(Boolean)
    b_harm_categories: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    b_severity: Mapped[int] = mapped_column(SmallInteger, default=0)
    helpfulness: Mapped[Choice] = mapped_column(pg_enum(Choice, "choice"))
    harmlessness: Mapped[Choice] = mapped_column(pg_enum(Choice, "choice"))
    confidence: Mapped[int | None] = mapped_column(SmallInteger)
    rationale: Mapped[str] = mapped_column(Text, default="", server_default="")
    time_spent_ms: Mapped[int] = mapped_column(Integer, default=0)
    shown_order: Mapped[ShownOrder] = mapped_column(pg_enum(ShownOrder, "shown_order"))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    # sha256 of the canonical request body: a replay with a different body is rejected.
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = created_at_column()


class Adjudication(Base):
    """A reviewer's final labels for a comparison annotators disagreed on; the latest one wins."""

    __tablename__ = "adjudication"
    __table_args__ = (
        CheckConstraint("NOT a_is_safe OR cardinality(a_harm_categories) = 0", name="a_safe_has_no_harm"),
        CheckConstraint("NOT b_is_safe OR cardinality(b_harm_categories) = 0", name="b_safe_has_no_harm"),
        CheckConstraint("a_severity BETWEEN 0 AND 3", name="a_severity_range"),
        CheckConstraint("b_severity BETWEEN 0 AND 3", name="b_severity_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparison.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    helpfulness: Mapped[Choice] = mapped_column(pg_enum(Choice, "choice"))
    harmlessness: Mapped[Choice] = mapped_column(pg_enum(Choice, "choice"))
    a_is_safe: Mapped[bool] = mapped_column(Boolean)
    b_is_safe: Mapped[bool] = mapped_column(Boolean)
    a_harm_categories: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    b_harm_categories: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    a_severity: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    b_severity: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[dt.datetime] = created_at_column()
