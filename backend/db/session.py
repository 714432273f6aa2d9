"""Engine and session factories. Nothing is created at import time: callers pass settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings, get_settings


def make_engine(settings: Settings, *, statement_timeout_ms: int | None = None) -> Engine:
    timeout = settings.db_statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms
    engine = create_engine(
        settings.database_url,
        pool_pre_ping=True,  # survive a Postgres restart without handing out dead connections
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )

    @event.listens_for(engine, "connect")
    def _session_settings(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        with dbapi_conn.cursor() as cur:
            # A runaway query or a lock wait never hangs a request forever.
            cur.execute(f"SET statement_timeout = {int(timeout)}")
            cur.execute("SET lock_timeout = 5000")
            cur.execute("SET idle_in_transaction_session_timeout = 60000")
        dbapi_conn.commit()

    return engine


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    return make_engine(get_settings())


@lru_cache(maxsize=1)
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work outside a request (CLI, worker): commit on success, roll back on error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
