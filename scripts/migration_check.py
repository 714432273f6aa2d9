#!/usr/bin/env python3
"""`alembic upgrade head` then `alembic check` on the real Postgres, in a scratch database.

A scratch database keeps a user's own DATABASE_URL database untouched while still exercising the
real server. Exit status 1 with a clear message on any failure."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("migration_check: DATABASE_URL is not set", file=sys.stderr)
        return 1
    server = make_url(url)
    libpq = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"migration_check_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        print(
            f"migration_check: cannot create a scratch database on {server.host}:{server.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    env = dict(os.environ, DATABASE_URL=server.set(database=name).render_as_string(hide_password=False))
    alembic = str(Path(sys.executable).parent / "alembic")
    try:
        for step in (["upgrade", "head"], ["check"]):
            res = subprocess.run([alembic, *step], cwd=REPO, env=env, capture_output=True, text=True)
            if res.returncode != 0:
                print(
                    f"migration_check: alembic {' '.join(step)} failed:\n{res.stdout}{res.stderr}",
                    file=sys.stderr,
                )
                return 1
        print("migration_check: alembic upgrade head + alembic check passed (no drift)")
        return 0
    finally:
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
