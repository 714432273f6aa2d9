"""A real `saferlhf serve` process serving the app on the test database, for browser and load tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.processes import PYTHON, child_env, free_port, start, stop, wait_until


@dataclass(frozen=True)
class LiveServer:
    url: str
    log: Path


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def live_server(
    *, database_url: str, artifacts: Path, log_dir: Path, workers: int = 1
) -> Iterator[LiveServer]:
    port = free_port()
    log = log_dir / f"uvicorn-{port}.log"
    env = child_env(
        DATABASE_URL=database_url,
        ARTIFACTS_DIR=str(artifacts),
        ENVIRONMENT="test",
        BASE_URL=f"http://127.0.0.1:{port}",
        DB_POOL_SIZE=os.environ.get("LIVE_DB_POOL_SIZE", "20"),
    )
    # `saferlhf serve`, as deployed: with several workers, each one accepts on its own
    # SO_REUSEPORT socket (backend/serving.py).
    args = [
        PYTHON,
        "-m",
        "backend.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = start(args, env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is None and _healthy(url), timeout=60, what="uvicorn", log=log)
        yield LiveServer(url=url, log=log)
    finally:
        stop(proc)
