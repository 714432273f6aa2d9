"""Projects: a harm taxonomy, guidelines and annotation policy, and who may work on them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, created_at_column


class Project(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    guidelines_md: Mapped[str] = mapped_column(Text, default="", server_default="")
    # [{"key": "violence", "label": "Violence, Aiding and Abetting, Incitement", "description": ...}, ...]
    harm_taxonomy: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # [{"level": 1, "label": "minor", "description": ...}, ...]; 0 always means safe.
    severity_levels: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    default_overlap: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    gold_rate: Mapped[float] = mapped_column(Float, default=0.1, server_default="0.1")
    lease_seconds: Mapped[int] = mapped_column(Integer, default=600, server_default="600")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = created_at_column()


class ProjectMember(Base):
    """Annotators and reviewers see only the projects they are members of; admins see all."""

    __tablename__ = "project_member"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = created_at_column()
