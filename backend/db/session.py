"""Engine and session factories. Nothing is created at import time: callers pass settings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings, get_settings


def make_engine(settings: Settings, *, statement_timeout_ms: int | None = None) -> Engine:
    timeout = settings.db_statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms
    engine = create_engine(
        settings.database_url,
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

    install_idle_ping(engine)
    return engine


# A connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 5.0


def install_idle_ping(engine: Engine) -> None:
    """Pessimistic disconnect handling, but only for connections that sat idle.

    `pool_pre_ping` would cost a database round trip on every checkout, i.e. on every request. A
    connection returned moments ago is very likely alive, and if Postgres did restart meanwhile,
    the first query's disconnect error invalidates the whole pool (SQLAlchemy's is_disconnect
    handling), so only requests already in flight fail. Idle connections, the ones a restart
    typically leaves dead, are pinged and silently replaced.
    """

    @event.listens_for(engine, "checkin")
    def _remember_use(_dbapi_conn: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE_S:
            return
        try:
            dbapi_conn.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as error:  # any driver error means "this connection is unusable"
            # The pool discards the connection and retries the checkout with a new one.
            raise exc.DisconnectionError() from error


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
