"""Imports and dataset snapshots."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from backend.domain.enums import ImportKind, ImportStatus


class ImportRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    kind: ImportKind
    status: ImportStatus
    filename: str
    file_sha256: str
    size_bytes: int
    total_rows: int = Field(description="rows read from the file")
    accepted_rows: int = Field(description="valid rows, duplicates included (0 when the file was rejected)")
    rejected_rows: int
    duplicate_rows: int = Field(description="valid rows that added nothing new (already there, or repeated)")
    report: dict[str, Any] = Field(
        description="rejected rows (row number and reason), created counts, options"
    )
    created_at: dt.datetime

    @computed_field(description="rows that added something: accepted_rows - duplicate_rows")  # type: ignore[prop-decorator]
    @property
    def imported_rows(self) -> int:
        return self.accepted_rows - self.duplicate_rows


class ImportRejected(BaseModel):
    detail: str
    code: str
    import_batch: ImportRead = Field(alias="import")

    model_config = ConfigDict(populate_by_name=True)


class SnapshotRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    round_id: int | None
    content_sha256: str
    row_count: int
    vote_count: int
    size_bytes: int
    recipe: dict[str, Any]
    stats: dict[str, Any]
    created_at: dt.datetime
    files: list[str] = Field(default_factory=list, description="names for /snapshots/{id}/files/{name}")


class SnapshotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    round_id: int | None = Field(None, description="only this round's comparisons; default: all")
    complete_only: bool = Field(
        False, description="only pairs that got every annotation asked for (k of k); default: all"
    )
