"""/healthz reports the database and the broker, and says 503 when one is down."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from backend.config import Settings
from backend.main import create_app
from tests.support.embedded import load_devservices, services_dir
from tests.support.processes import free_port


def test_healthz_is_ok_when_both_services_answer(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert body["database"]["detail"].startswith("PostgreSQL")


def test_healthz_returns_503_while_postgres_is_down_and_recovers(redis_url: str) -> None:
    """A real second Postgres is started, stopped and started again under the same app."""
    with services_dir() as state:
        check_health_through_a_postgres_restart(state, redis_url)


def check_health_through_a_postgres_restart(state: Path, redis_url: str) -> None:
    ds = load_devservices()
    port = free_port()
    url = ds.pg_up(state, port, "health")
    app = create_app(Settings(environment="test", database_url=url, redis_url=redis_url))
    try:
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            ds.pg_down(state)
            down = client.get("/healthz")
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == "unavailable"
            assert body["database"]["ok"] is False
            assert "unreachable" in body["database"]["detail"]
            assert body["broker"]["ok"] is True
            assert "Traceback" not in down.text and str(state) not in down.text
            # An API call while the database is down: 503 with a retry hint, not a 500. Twice: the
            # first may find a pooled connection that is now dead, the second opens a new one.
            for _ in range(2):
                call = client.get("/api/v1/projects", headers={"Authorization": "Bearer some-token"})
                assert call.status_code == 503, call.text
                assert call.json()["code"] == "database_unavailable"
                assert call.headers["retry-after"] == "5"
                assert "Traceback" not in call.text and "psycopg" not in call.text
            ds.pg_up(state, port, "health")
            deadline = time.monotonic() + 10
            while client.get("/healthz").status_code != 200:  # pool_pre_ping replaces dead connections
                assert time.monotonic() < deadline, "health did not recover after Postgres came back"
                time.sleep(0.2)
    finally:
        app.state.engine.dispose()
        ds.pg_down(state)


def test_healthz_returns_503_when_the_broker_is_unreachable(database_url: str) -> None:
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(Settings(environment="test", database_url=database_url, redis_url=dead_broker))
    try:
        with TestClient(app) as client:
            response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["broker"]["ok"] is False
        assert response.json()["database"]["ok"] is True
    finally:
        app.state.engine.dispose()


def test_unknown_api_route_uses_the_json_error_shape(client: TestClient) -> None:
    response = client.get(f"/api/v1/no-such-thing-{uuid.uuid4().hex[:4]}")
    assert response.status_code == 404
    assert set(response.json()) == {"detail", "code"}
    assert response.json()["code"] == "not_found"


def test_openapi_is_served_at_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/me" in spec["paths"]
    assert "/healthz" in spec["paths"]
