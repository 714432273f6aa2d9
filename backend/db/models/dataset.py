"""Data that leaves or enters the platform: immutable dataset snapshots and import batches."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, created_at_column, pg_enum
from backend.domain.enums import ImportKind, ImportStatus


class DatasetSnapshot(Base):
    """An exported, content-addressed dataset. Rows are never updated (a trigger enforces it)."""

    __tablename__ = "dataset_snapshot"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="RESTRICT"), index=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("round.id", ondelete="RESTRICT"), index=True)
    # sha256 over the canonical JSONL bytes of the aggregated rows; equal content, equal hash.
    content_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # Opaque key under the artifacts root, chosen by the server, never by a client.
    storage_key: Mapped[str] = mapped_column(String(200))
    row_count: Mapped[int] = mapped_column(Integer)
    vote_count: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # How the rows were selected and aggregated (filters, weighting, tie policy).
    recipe: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    stats: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = created_at_column()


class ImportBatch(Base):
    """One uploaded file and what became of each of its rows."""

    __tablename__ = "import_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ImportKind] = mapped_column(pg_enum(ImportKind, "import_kind"))
    status: Mapped[ImportStatus] = mapped_column(pg_enum(ImportStatus, "import_status"))
    filename: Mapped[str] = mapped_column(String(300))
    file_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    total_rows: Mapped[int] = mapped_column(Integer)
    accepted_rows: Mapped[int] = mapped_column(Integer)
    rejected_rows: Mapped[int] = mapped_column(Integer)
    duplicate_rows: Mapped[int] = mapped_column(Integer)
    # {"rejected": [{"row": 12, "reason": "..."}, ...], "options": {...}}
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = created_at_column()
