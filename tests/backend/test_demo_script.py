"""scripts/demo.sh (`make demo`): Ctrl-C is the way a running demo stops, so it exits 0 after
stopping everything it started; make then reports no error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import REPO_ROOT
from tests.support.embedded import services_dir
from tests.support.processes import child_env, free_port, start, stop, wait_until

pytestmark = pytest.mark.timeout(300)


def start_demo(root: Path, tmp_path: Path, log: Path, **settings: str) -> subprocess.Popen[bytes]:
    """scripts/demo.sh with its own servers on free ports (never the test session's), its artifacts
    and logs under tmp_path, and ``settings`` (SERVE, ROUNDS, PORT, ...) in its environment; returns
    once it serves, or has exited."""
    env = child_env(
        DEMO_STATE=str(root / "svc"),
        DEV_PG_PORT="auto",
        DEV_REDIS_PORT="auto",
        ARTIFACTS_DIR=str(tmp_path / "artifacts"),
        **{"DEMO_LOGS": str(tmp_path / "logs"), **settings},
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
    except BaseException:
        stop(demo)
        raise
    return demo


def test_ctrl_c_stops_the_running_demo_and_everything_it_started_with_exit_status_0(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    with services_dir() as root:
        # The rounds have their own test (below, and tests/simulate/test_round_end_to_end.py).
        demo = start_demo(root, tmp_path, log, SERVE="1", ROUNDS="0", PORT=str(free_port()))
        try:
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


# The demo's rounds at the smallest sizes that still run every stage (the demo's own sizes take
# minutes; docs/rounds.md): a short SFT, 6 prompts x 2 answers, a few optimizer steps.
TINY_STAGE = {"per_device_train_batch_size": 4, "max_length": 64, "epochs": 1, "num_threads": 1}
TINY_ROUND = {
    "max_new_tokens": 8,
    "held_out_fraction": 0.5,  # so that the reward and cost models have held-out pairs
    "reward_config": TINY_STAGE,
    "cost_config": TINY_STAGE,
    "policy_config": {"max_steps": 2, "per_device_prompt_batch_size": 4, "per_device_train_batch_size": 4},
    "evaluate_config": {"per_device_eval_batch_size": 32, "samples_per_prompt": 1},
}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_serving_demo_answers_at_once_runs_its_rounds_in_the_background_and_writes_the_table(
    tmp_path: Path,
) -> None:
    """`make demo` with rounds: the platform serves while the round driver works through the API in
    the background; the driver's table lands in report.json; Ctrl-C afterwards still stops it all."""
    log, logs, work = tmp_path / "demo.log", tmp_path / "logs", tmp_path / "work"
    settings = tmp_path / "round.json"
    settings.write_text(json.dumps(TINY_ROUND))
    port = free_port()
    with services_dir() as root:
        demo = start_demo(
            root,
            tmp_path,
            log,
            SERVE="1",
            ROUNDS="1",
            PORT=str(port),
            DEMO_LOGS=str(logs),
            DEMO_WORK=str(work),
            DEMO_ROUNDS_ARGS=f"--sft-rows 300 --sft-epochs 1 --prompts 6 --responses 2 --bots 2 "
            f"--settings {settings}",
        )
        try:
            # Serving at once: the rounds have not finished (their set-up alone trains an SFT model).
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
            assert not (work / "report.json").exists()
            rounds_log = logs / "rounds.log"
            wait_until(
                lambda: (
                    (rounds_log.is_file() and "rows written" in rounds_log.read_text())
                    or demo.poll() is not None
                ),
                timeout=480,
                what="the demo's round",
                log=rounds_log,
            )
            assert demo.poll() is None, log.read_text()
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
            os.killpg(demo.pid, signal.SIGINT)
            code = demo.wait(timeout=120)
        finally:
            stop(demo)
    assert code == 0, log.read_text()
    text = rounds_log.read_text()
    assert "round 1 (id " in text and "launched" in text and "completed" in text, text
    rows = json.loads((work / "report.json").read_text())
    assert [row["round"] for row in rows] == [0, 1]
    assert {"true_helpfulness", "true_unsafe_rate", "reward_accuracy", "cost_sign_accuracy", "lambda"} <= set(
        rows[1]
    )
    # The accuracies need held-out pairs, which a handful of prompts may not leave; the judges' view
    # and λ are always there.
    for key in ("true_helpfulness", "true_unsafe_rate", "lambda"):
        assert rows[1][key] is not None, (key, rows[1])
    assert rows[0]["true_helpfulness"] is not None  # round 0: the SFT policy in round 1's arena
