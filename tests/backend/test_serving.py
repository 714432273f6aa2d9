"""`saferlhf serve --workers N`: one SO_REUSEPORT socket per worker, connections spread across
them by the kernel, a clean stop on SIGTERM, and clear failures (backend/serving.py)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from backend.serving import balances_connections
from tests.support.processes import PYTHON, child_env, free_port, start, stop, wait_until

# The supervisor with one SO_REUSEPORT socket per worker runs only where the kernel balances them;
# elsewhere `serve` is uvicorn's own multi-worker mode.
linux_only = pytest.mark.skipif(not balances_connections(), reason="SO_REUSEPORT balancing is Linux-only")


def _serve(port: int, workers: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    args = [PYTHON, "-m", "backend.cli", "serve", "--port", str(port), "--workers", str(workers)]
    return start([*args, "--log-level", "info", "--no-access-log"], env=child_env(**env), log=log)


def _healthz(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def _workers(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The supervisor's live worker processes (not multiprocessing's resource tracker, nor a
    killed worker that the supervisor has not reaped yet)."""
    found = []
    for child in psutil.Process(proc.pid).children():
        with contextlib.suppress(psutil.ZombieProcess, psutil.NoSuchProcess):
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
    return found


def _listeners(port: int) -> dict[int, int]:
    """pid -> listening sockets on the port."""
    found: dict[int, int] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid is not None:
            found[conn.pid] = found.get(conn.pid, 0) + 1
    return found


@contextlib.contextmanager
def _server(
    tmp_path: Path, database_url: str, workers: int = 2
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    log = tmp_path / "serve.log"
    proc = _serve(port, workers, log, DATABASE_URL=database_url, ENVIRONMENT="test")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: _healthz(url) and len(_listeners(port)) == workers, timeout=60, what="serve", log=log
        )
        yield proc, port
    finally:
        stop(proc)


@linux_only
def test_each_worker_listens_on_its_own_socket_and_gets_a_share_of_connections(
    tmp_path: Path, database_url: str
) -> None:
    with _server(tmp_path, database_url) as (proc, port):
        workers = {p.pid for p in _workers(proc)}
        listeners = _listeners(port)
        assert set(listeners) == workers and len(workers) == 2, (listeners, workers)
        assert proc.pid not in listeners  # the supervisor accepts nothing itself
        # 40 kept-alive connections, as 40 annotators' browsers hold them: the kernel hashes each
        # to one worker's socket, so each worker holds a fair share. (Bin(40, 1/2) <= 7 has
        # probability 5e-6.)
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}") for _ in range(40)]
        try:
            for client in clients:
                assert client.get("/healthz").status_code in (200, 503)
            held = {pid: 0 for pid in workers}
            for pid in workers:
                for conn in psutil.Process(pid).net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port:
                        held[pid] += 1
            assert sum(held.values()) == 40, held
            assert min(held.values()) >= 8, held
        finally:
            for client in clients:
                client.close()


@linux_only
def test_sigterm_to_the_supervisor_stops_every_worker_and_the_port_can_be_served_again(
    tmp_path: Path, database_url: str
) -> None:
    with _server(tmp_path, database_url) as (proc, port):
        workers = _workers(proc)
        # Kept-alive connections that the server closes when it stops leave it TIME_WAIT entries,
        # which must not make the next start report the port as taken.
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}") for _ in range(8)]
        for client in clients:
            client.get("/healthz")
        os.kill(proc.pid, signal.SIGTERM)  # the supervisor only, not the process group
        assert proc.wait(timeout=40) == 0
        _, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive, alive
        assert _listeners(port) == {}
        for client in clients:
            client.close()
    assert "stopping 2 workers" in (tmp_path / "serve.log").read_text()
    again = _serve(port, 2, tmp_path / "again.log", DATABASE_URL=database_url, ENVIRONMENT="test")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthz(url), timeout=60, what="serve again", log=tmp_path / "again.log")
    finally:
        stop(again)


@linux_only
def test_a_worker_killed_while_serving_is_replaced(tmp_path: Path, database_url: str) -> None:
    with _server(tmp_path, database_url) as (proc, port):
        before = {p.pid for p in _workers(proc)}
        victim = sorted(before)[0]
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            listening = _listeners(port)  # one snapshot: the victim may exit between two
            return len(listening) == 2 and victim not in listening

        wait_until(
            replaced,
            timeout=60,
            what="a replacement worker",
            log=tmp_path / "serve.log",
        )
        assert proc.poll() is None
        assert _healthz(f"http://127.0.0.1:{port}")
    assert "starting a new one" in (tmp_path / "serve.log").read_text()


@linux_only
def test_two_workers_killed_in_a_row_are_replaced_with_back_off_and_the_server_keeps_serving(
    tmp_path: Path, database_url: str
) -> None:
    """The OOM killer's SIGKILL, twice: to a worker that serves, then to its replacement right
    after it started. Neither is a start-up failure, so neither may stop the server."""
    with _server(tmp_path, database_url) as (proc, port):
        url = f"http://127.0.0.1:{port}"
        first = sorted(p.pid for p in _workers(proc))[0]
        os.kill(first, signal.SIGKILL)
        survivors = {p.pid for p in _workers(proc)} - {first}

        def replacement() -> int | None:
            new = {p.pid for p in _workers(proc)} - survivors - {first}
            return min(new) if new else None

        wait_until(lambda: replacement() is not None, timeout=30, what="a replacement worker")
        second = replacement()
        assert second is not None
        os.kill(second, signal.SIGKILL)  # before it could become ready
        assert _healthz(url)  # the surviving worker answers meanwhile

        def back_to_full_strength() -> bool:
            listening = _listeners(port)
            return len(listening) == 2 and not {first, second} & set(listening) and _healthz(url)

        wait_until(back_to_full_strength, timeout=60, what="two workers again", log=tmp_path / "serve.log")
        assert proc.poll() is None
    text = (tmp_path / "serve.log").read_text()
    assert f"worker {first} was killed by SIGKILL; starting a new one in 0.5s" in text, text
    assert f"worker {second} was killed by SIGKILL; starting a new one in 1.0s" in text, text
    assert "stopping the server" not in text


@linux_only
def test_a_port_held_by_another_program_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        proc = _serve(port, 2, tmp_path / "serve.log")
        assert proc.wait(timeout=60) == 1
    text = (tmp_path / "serve.log").read_text()
    assert f"error: port {port} on 127.0.0.1 is already in use by another program" in text


@linux_only
def test_workers_that_cannot_start_stop_the_server_instead_of_restarting_forever(tmp_path: Path) -> None:
    # A database URL with no driver: the settings are valid, the app cannot be created.
    proc = _serve(free_port(), 2, tmp_path / "serve.log", DATABASE_URL="nosuchdb://localhost/x")
    try:
        code = proc.wait(timeout=60)
    finally:
        stop(proc)
    text = (tmp_path / "serve.log").read_text()
    assert code != 0, text
    assert "before it was ready; stopping the server" in text, text
    assert text.count("Process saferlhf-api") <= 2, text  # no restart loop


def test_invalid_settings_are_reported_before_any_worker_starts(tmp_path: Path) -> None:
    proc = _serve(free_port(), 2, tmp_path / "serve.log", ENVIRONMENT="no-such-environment")
    assert proc.wait(timeout=60) == 1
    text = (tmp_path / "serve.log").read_text()
    assert "error: invalid settings: ENVIRONMENT: Input should be" in text, text
    assert "saferlhf-api" not in text


def test_the_worker_command_reports_invalid_settings_in_one_line(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    proc = start(
        [PYTHON, "-m", "backend.cli", "worker"], env=child_env(ENVIRONMENT="no-such-environment"), log=log
    )
    assert proc.wait(timeout=60) == 1
    text = log.read_text()
    assert "error: invalid settings: ENVIRONMENT: Input should be" in text, text
    assert "Traceback" not in text


def _die_by_sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_back_off_doubles_while_replacements_keep_dying_and_starts_over_after_a_stable_run() -> None:
    from backend.serving import STABLE_S, ServeOptions, Supervisor

    supervisor = Supervisor(ServeOptions("127.0.0.1", free_port()), workers=1)
    slot = supervisor.slots[0]

    def delay_after_death(*, ready_at: float | None, now: float) -> float:
        worker = multiprocessing.get_context("fork").Process(target=_die_by_sigkill)
        worker.start()
        worker.join()
        slot.process, slot.ready_at = worker, ready_at
        assert supervisor._on_exit(slot, now) is None  # replaced, never a reason to stop
        return slot.restart_at - now

    assert [delay_after_death(ready_at=None, now=100.0) for _ in range(8)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
    ]
    assert delay_after_death(ready_at=100.0, now=100.0 + STABLE_S - 1) == 30.0  # served too briefly
    assert delay_after_death(ready_at=100.0, now=100.0 + STABLE_S) == 0.5
    assert delay_after_death(ready_at=None, now=200.0) == 1.0
