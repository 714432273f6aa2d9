"""Read queries of import batches (the record of each uploaded file and its report), for the
routes and pages that list or show them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import ImportBatch
from backend.domain.errors import NotFound


def list_imports(*, session: Session, project_id: int, limit: int | None = None) -> list[ImportBatch]:
    """The project's imports, the newest first; at most `limit` of them when given."""
    query = select(ImportBatch).where(ImportBatch.project_id == project_id).order_by(ImportBatch.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def get_import(*, session: Session, import_id: int) -> ImportBatch:
    batch = session.get(ImportBatch, import_id)
    if batch is None:
        raise NotFound(f"import {import_id} not found")
    return batch
