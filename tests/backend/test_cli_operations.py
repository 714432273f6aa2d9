"""`saferlhf ping` and `saferlhf check` against services that are not there: one clear line that
names the setting to fix, a non-zero exit, no traceback and no password."""

from __future__ import annotations

import subprocess

from tests.support.processes import PYTHON, child_env, free_port


def saferlhf(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "backend.cli", *args],
        capture_output=True,
        text=True,
        env=child_env(**env),
        timeout=120,
    )


def test_ping_with_the_broker_down_says_so_in_one_line_that_names_redis_url() -> None:
    port = free_port()  # nothing listens there
    result = saferlhf("ping", "--timeout", "2", REDIS_URL=f"redis://:hunter2@127.0.0.1:{port}/0")
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: broker unreachable")
    assert f"REDIS_URL=redis://:***@127.0.0.1:{port}/0" in lines[0]
    assert "hunter2" not in lines[0]


def test_check_with_the_database_unreachable_names_database_url(redis_url: str) -> None:
    port = free_port()
    unreachable = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{port}/elsewhere"
    result = saferlhf("check", DATABASE_URL=unreachable, REDIS_URL=redis_url)
    assert result.returncode == 1
    database, broker = result.stdout.strip().splitlines()
    assert database.startswith("database: DOWN")
    assert f"DATABASE_URL=postgresql+psycopg://postgres:***@127.0.0.1:{port}/elsewhere" in database
    assert broker.startswith("broker:   ok") and "REDIS_URL" not in broker
    assert "Traceback" not in result.stderr and "hunter2" not in result.stdout


def test_check_with_the_broker_unreachable_names_redis_url(database_url: str) -> None:
    port = free_port()
    result = saferlhf("check", DATABASE_URL=database_url, REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert result.returncode == 1
    database, broker = result.stdout.strip().splitlines()
    assert database.startswith("database: ok") and "DATABASE_URL" not in database
    assert broker.startswith("broker:   DOWN")
    assert f"REDIS_URL=redis://127.0.0.1:{port}/0" in broker
