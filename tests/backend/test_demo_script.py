"""scripts/demo.sh (`make demo`): Ctrl-C is the way a running demo stops, so it exits 0 after
stopping everything it started; make then reports no error."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO_ROOT
from tests.support.embedded import services_dir
from tests.support.processes import child_env, free_port, start, stop, wait_until

pytestmark = pytest.mark.timeout(300)


def test_ctrl_c_stops_the_running_demo_and_everything_it_started_with_exit_status_0(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    with services_dir() as root:
        env = child_env(
            SERVE="1",
            ROUNDS="0",  # the rounds have their own test (tests/simulate/test_round_end_to_end.py)
            PORT=str(free_port()),
            DEMO_STATE=str(root / "svc"),
            DEV_PG_PORT="auto",
            DEV_REDIS_PORT="auto",
            ARTIFACTS_DIR=str(tmp_path / "artifacts"),
            DEMO_LOGS=str(tmp_path / "logs"),
        )
        for given in ("DATABASE_URL", "REDIS_URL"):  # the demo starts its own servers
            env.pop(given, None)
        demo = start(["bash", str(REPO_ROOT / "scripts" / "demo.sh")], env=env, log=log)
        try:
            wait_until(
                lambda: "is running at" in log.read_text() or demo.poll() is not None,
                timeout=180,
                what="the demo",
                log=log,
            )
            assert demo.poll() is None, log.read_text()
            started = psutil.Process(demo.pid).children(recursive=True)  # the app, the worker, its pool
            started += [
                psutil.Process(int((root / "svc" / "pg" / "postmaster.pid").read_text().split()[0])),
                psutil.Process(int((root / "svc" / "redis" / "redis.pid").read_text())),
            ]
            assert len(started) >= 4
            os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
            code = demo.wait(timeout=120)
        finally:
            stop(demo)
        text = log.read_text()
        assert code == 0, text
        assert text.rstrip().endswith("stopped"), text
        _, alive = psutil.wait_procs(started, timeout=15)
        assert not alive, alive
