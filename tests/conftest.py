"""Shared fixtures: the real Postgres and broker started by `make test`, a fresh database per
session built by Alembic, and a per-test transaction that is rolled back afterwards.

Services come from DATABASE_URL / REDIS_URL (set by `make test`, which starts embedded servers on
free ports unless you point these at your own). With CI=true an unreachable service fails the
run; a developer without services gets a skip that says how to start them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ENVIRONMENT", "test")

REPO_ROOT = Path(__file__).resolve().parent.parent
HOW_TO = "run the suite with `make test`, which starts embedded Postgres and Valkey servers"


def services_required() -> bool:
    """CI and `make test` (CI=true or REQUIRE_SERVICES=1): a missing service fails the run."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("CI", "REQUIRE_SERVICES"))


def service_missing(message: str) -> None:
    if services_required():
        pytest.exit(f"a required service is unreachable (CI/REQUIRE_SERVICES set): {message}", returncode=1)
    pytest.skip(f"{message}; {HOW_TO}")


@pytest.fixture(scope="session")
def server_database_url() -> str:
    """URL of the Postgres server (any database on it) that test databases are created on."""
    url = os.environ.get("TEST_SERVER_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        service_missing("DATABASE_URL is not set")
        raise AssertionError("unreachable")
    os.environ["TEST_SERVER_DATABASE_URL"] = url  # remembered: DATABASE_URL is repointed below
    from tests.support.databases import can_connect

    error = can_connect(url)
    if error:
        service_missing(f"PostgreSQL at {url} is unreachable ({error})")
    return url


@pytest.fixture(scope="session")
def database_url(server_database_url: str) -> Iterator[str]:
    """A fresh database for this test session, migrated to head with Alembic."""
    from tests.support.databases import create_database, drop_database, migrate

    url = create_database(server_database_url, f"test_{uuid.uuid4().hex[:12]}")
    migrate(url, "head")
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url  # subprocesses (worker, live server) inherit it
    _clear_cached_settings()
    yield url
    _clear_cached_settings()
    if previous is not None:
        os.environ["DATABASE_URL"] = previous
    drop_database(server_database_url, url)


def _clear_cached_settings() -> None:
    from backend.config import get_settings
    from backend.db.session import get_engine, get_sessionmaker

    if get_engine.cache_info().currsize:
        get_engine().dispose()
    for cached in (get_settings, get_engine, get_sessionmaker):
        cached.cache_clear()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        service_missing("REDIS_URL is not set")
        raise AssertionError("unreachable")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        service_missing(f"the broker at {url} is unreachable ({type(exc).__name__})")
    return url


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from backend.config import Settings

    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        artifacts_dir=tmp_path_factory.mktemp("artifacts"),
    )


@pytest.fixture(scope="session")
def engine(settings):  # type: ignore[no-untyped-def]
    from backend.db.session import make_engine

    eng = make_engine(settings)
    yield eng
    eng.dispose()


@pytest.fixture
def db_session(engine):  # type: ignore[no-untyped-def]
    """A session inside an outer transaction that is rolled back after the test. Code under test
    may commit: commits become savepoints (join_transaction_mode="create_savepoint")."""
    from sqlalchemy.orm import Session

    connection = engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield session
    session.close()
    outer.rollback()
    connection.close()


@pytest.fixture
def app(settings, db_session):  # type: ignore[no-untyped-def]
    from backend.edge.deps import get_db
    from backend.main import create_app

    application = create_app(settings)
    application.dependency_overrides[get_db] = lambda: db_session
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client
