"""The Alembic history builds the schema the models describe, and can be walked down and up."""

from __future__ import annotations

import uuid

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

import backend.db.models  # noqa: F401
from backend.db.base import Base
from tests.support.databases import alembic_config, create_database, downgrade, drop_database, migrate


def test_upgrade_downgrade_upgrade_round_trip_on_real_postgres(server_database_url: str) -> None:
    url = create_database(server_database_url, f"migr_{uuid.uuid4().hex[:10]}")
    engine = create_engine(url)
    try:
        migrate(url, "head")
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        downgrade(url, "base")
        with engine.connect() as conn:
            leftover_tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
            leftover_types = conn.execute(
                text(
                    "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = "
                    "t.typnamespace WHERE n.nspname='public' AND t.typtype='e'"
                )
            ).all()
        assert leftover_tables == set()
        assert leftover_types == []
        migrate(url, "head")
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == [], f"models and migrations drifted: {diff}"
    finally:
        engine.dispose()
        drop_database(server_database_url, url)


def test_alembic_check_reports_no_drift(database_url: str) -> None:
    command.check(alembic_config(database_url))


def test_dataset_snapshot_rows_cannot_be_updated(db_session) -> None:  # type: ignore[no-untyped-def]
    import pytest
    from sqlalchemy.exc import DBAPIError

    from backend.db.models import DatasetSnapshot, Project

    project = Project(name=f"p-{uuid.uuid4().hex[:6]}", harm_taxonomy=[], severity_levels=[])
    db_session.add(project)
    db_session.flush()
    snap = DatasetSnapshot(
        project_id=project.id,
        content_sha256=uuid.uuid4().hex * 2,
        storage_key="k",
        row_count=1,
        vote_count=3,
        size_bytes=10,
    )
    db_session.add(snap)
    db_session.flush()
    with pytest.raises(DBAPIError, match="immutable"):
        db_session.execute(text("UPDATE dataset_snapshot SET row_count = 2 WHERE id = :i"), {"i": snap.id})
