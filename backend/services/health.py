"""Reachability of the database and the broker, for /healthz and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from sqlalchemy import Engine, text

from backend.config import Settings


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def check_database(engine: Engine) -> Check:
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        return Check(ok=True, detail=f"PostgreSQL {version}")
    except Exception as exc:  # any driver error means "not reachable" to the operator
        return Check(ok=False, detail=f"database unreachable: {type(exc).__name__}")


def check_broker(settings: Settings) -> Check:
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        client.ping()
        info = client.info("server")
        return Check(ok=True, detail=f"redis-compatible {info.get('redis_version', '?')}")
    except Exception as exc:
        return Check(ok=False, detail=f"broker unreachable: {type(exc).__name__}")
    finally:
        client.close()
