"""Policy stages on two ranks for real: two gloo processes on CPU under ``torchrun`` (and the
``deepspeed`` launcher), DeepSpeed ZeRO-2 and ZeRO-3, micro models (issue 12).

What must hold across ranks: λ and the episode-cost window are the same on every rank after every
step (each rank writes its own copy into its part of every checkpoint, compared here); the first
step's losses equal a single-process run on the same global batch; a rank killed with SIGKILL in
the middle of a checkpoint leaves no checkpoint that a restart would use, and the restart
continues from the last complete one onto the uninterrupted trajectory; PPO, reward shaping and
DPO export a model ``from_pretrained`` loads.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.training.conftest import REPO, cli_env
from tests.training.rl_fixtures import micro_rl
from training.engine.serialization import load_state
from training.events import read_events

pytestmark = pytest.mark.deepspeed
FIXTURES = (micro_rl,)
# A run takes 20-90 s on an idle 2-core machine, several minutes when the machine is loaded (and
# the first launch of a checkout JIT-builds DeepSpeed's CPU comm op, about 2 minutes): the limit
# only catches a hang.
LAUNCH_TIMEOUT = 900


def launch(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a launcher (torchrun, deepspeed, or one process) in a session of its own and return
    its exit status and output. On a timeout the whole session is killed and the test fails with
    the output so far: ``subprocess.run`` would kill the launcher alone and leave its ranks
    running, loading the machine (and holding files) for the tests after it. Ranks still alive
    after the launcher exited are killed the same way. Output goes to files, not pipes, so a
    chatty rank never blocks on a full pipe."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=LAUNCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(ProcessLookupError):  # an empty session: nothing was left running
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code is None:
        pytest.fail(
            f"{Path(cmd[0]).name} did not finish within {LAUNCH_TIMEOUT} s (killed with its ranks):\n"
            + stdout[-2000:]
            + stderr[-4000:]
        )
    return subprocess.CompletedProcess(cmd, code, stdout, stderr)


def launcher_port() -> int:
    """A free port for the ``deepspeed`` launcher's rendezvous, below the kernel's ephemeral range.
    A port from ``bind(0)`` is one the kernel hands out to other sockets too (the connections of
    other runs' gloo ranks, Redis and Postgres clients), so between the check here and the
    launcher's own bind someone else may take it; ports outside the ephemeral range are only ever
    taken by an explicit bind."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(20000, min(low, 32768)), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and the ephemeral range")


def _rl_args(paths: dict[str, Any], out: Path, **extra: Any) -> list[str]:
    values: dict[str, Any] = {
        "model_name_or_path": paths["actor"],
        "reward_model_name_or_path": paths["rm"],
        "cost_model_name_or_path": paths["cm"],
        "train_data": paths["train"],
        "output_dir": out,
        "max_prompt_length": 40,
        "max_new_tokens": 8,
        "per_device_prompt_batch_size": 2,
        "per_device_train_batch_size": 2,
        "actor_learning_rate": 1e-3,
        "critic_learning_rate": 1e-3,
        "lambda_lr": 0.5,
        "threshold": -1.0,
        "episode_cost_window_size": 6,
        "device": "cpu",
        "num_threads": 1,
        **extra,
    }
    return [f"--{key}={value}" for key, value in values.items()]


def torchrun(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc_per_node 2 -m training ARGS`` on CPU (gloo)."""
    launcher = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert launcher, "torchrun is not installed next to this python"
    cmd = [launcher, "--standalone", "--nproc_per_node", "2"]  # standalone: torchrun picks a free port
    return launch([*cmd, "-m", "training", *args], cli_env(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", **env))


def single(args: list[str]) -> subprocess.CompletedProcess[str]:
    return launch([sys.executable, "-m", "training", *args], cli_env(OMP_NUM_THREADS="1"))


def ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


def step_metrics(out: Path, *keys: str) -> dict[int, dict[str, float]]:
    return {
        e["step"]: {k: e["metrics"][k] for k in keys}
        for e in read_events(out / "events.jsonl")
        if e["type"] == "metric" and "train/actor_loss" in e["metrics"]
    }


def rank_objectives(checkpoint: Path) -> list[dict[str, Any]]:
    return [load_state(checkpoint / f"rank-{r:05d}", "rank_state")["objective"] for r in (0, 1)]


TRAJECTORY = ("train/actor_loss", "train/reward_critic_loss", "train/cost_critic_loss", "train/lambda")


@pytest.fixture(scope="module")
def zero2_run(micro_rl: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 6-step PPO-Lag run at world size 2 under ZeRO-2, a checkpoint every step."""
    out = tmp_path_factory.mktemp("zero2") / "run"
    ok(
        torchrun(
            [
                "ppo-lag",
                *_rl_args(micro_rl, out, zero_stage=2, max_steps=6, save_steps=1, save_total_limit=10),
            ]
        )
    )
    return out


def _assert_lambda_and_window_agree(out: Path, steps: int) -> None:
    checkpoints = sorted((out / "checkpoints").glob("step-*"))
    assert [int(p.name.removeprefix("step-")) for p in checkpoints] == list(range(1, steps + 1))
    lambdas = set()
    for checkpoint in checkpoints:
        first, second = rank_objectives(checkpoint)
        assert first["log_lambda"] == second["log_lambda"], checkpoint.name
        assert first["window"] == second["window"], checkpoint.name
        lambdas.add(first["log_lambda"])
    assert len(lambdas) == steps  # λ moved at every step: the comparison is not vacuous
    state = load_state(checkpoints[-1], "trainer_state")
    assert state["objective"] == rank_objectives(checkpoints[-1])[0]
    assert len(state["objective"]["window"]) == 6  # both ranks' episodes in one global window


def test_zero2_lambda_and_episode_cost_are_equal_on_both_ranks_after_every_step(zero2_run: Path) -> None:
    _assert_lambda_and_window_agree(zero2_run, 6)
    events = read_events(zero2_run / "events.jsonl")
    assert [e["seq"] for e in events] == list(range(len(events)))  # one events stream, from rank 0


@pytest.fixture(scope="module")
def zero3_run(micro_rl: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same at ZeRO-3 (frozen networks partitioned too), 4 steps."""
    out = tmp_path_factory.mktemp("zero3") / "run"
    ok(
        torchrun(
            [
                "ppo-lag",
                *_rl_args(micro_rl, out, zero_stage=3, max_steps=4, save_steps=1, save_total_limit=10),
            ]
        )
    )
    return out


def test_zero3_lambda_and_episode_cost_are_equal_on_both_ranks_after_every_step(zero3_run: Path) -> None:
    _assert_lambda_and_window_agree(zero3_run, 4)


def test_a_stopped_zero3_run_resumes_onto_the_uninterrupted_trajectory(
    micro_rl: dict, tmp_path: Path, zero3_run: Path
) -> None:
    """Every parameter's ZeRO-3 partition (fp32 master and Adam moments) comes back, including the
    one-element score-head bias whose second partition is all padding."""
    out = tmp_path / "stopped"
    args = ["ppo-lag", *_rl_args(micro_rl, out, zero_stage=3, max_steps=4, save_steps=2)]
    assert torchrun(args, TRAINING_TEST_CRASH_AFTER_STEP="2").returncode != 0
    ok(torchrun(args))
    expected, got = step_metrics(zero3_run, *TRAJECTORY), step_metrics(out, *TRAJECTORY)
    assert sorted(got) == [1, 2, 3, 4]
    for step in (3, 4):
        for key in TRAJECTORY:
            assert got[step][key] == pytest.approx(expected[step][key], abs=1e-6), (step, key)


def test_first_step_losses_at_world_size_two_match_the_single_process_run(
    micro_rl: dict, tmp_path: Path
) -> None:
    """Greedy sampling, one global batch of 4 prompts: one process with micro-batch 4, or two
    ranks with 2 each. The first step's losses are taken before any update."""
    common = {"temperature": 0, "max_steps": 1, "save_steps": 0}
    ok(
        single(
            [
                "ppo-lag",
                *_rl_args(
                    micro_rl,
                    tmp_path / "one",
                    per_device_prompt_batch_size=4,
                    per_device_train_batch_size=4,
                    **common,
                ),
            ]
        )
    )
    ok(torchrun(["ppo-lag", *_rl_args(micro_rl, tmp_path / "two", zero_stage=2, **common)]))
    keys = (*TRAJECTORY, "train/episode_cost", "train/reward", "train/cost")
    one, two = step_metrics(tmp_path / "one", *keys), step_metrics(tmp_path / "two", *keys)
    assert sorted(one) == sorted(two) == [1]
    for key in keys:
        assert two[1][key] == pytest.approx(one[1][key], rel=1e-4, abs=1e-5), key


def test_a_rank_killed_mid_checkpoint_leaves_no_usable_partial_checkpoint_and_the_restart_resumes(
    micro_rl: dict, tmp_path: Path, zero2_run: Path
) -> None:
    out = tmp_path / "killed"
    args = ["ppo-lag", *_rl_args(micro_rl, out, zero_stage=2, max_steps=6, save_steps=2)]
    killed = torchrun(args, TRAINING_TEST_KILL_RANK_IN_SAVE="1:4")
    assert killed.returncode != 0
    checkpoints = out / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "step-00000002"
    assert not (checkpoints / "step-00000004").exists()
    partial = checkpoints / ".tmp-step-00000004"
    assert (partial / "rank-00000" / "DONE").is_file() and not (partial / "rank-00001" / "DONE").exists()

    ok(torchrun(args))
    resumed = [
        e for e in read_events(out / "events.jsonl") if e["type"] == "status" and e["status"] == "resumed"
    ]
    assert len(resumed) == 1 and resumed[0]["step"] == 2
    assert not partial.exists()  # cleaned at the restart
    expected, got = step_metrics(zero2_run, *TRAJECTORY), step_metrics(out, *TRAJECTORY)
    for step in (3, 4, 5, 6):
        for key in TRAJECTORY:
            assert got[step][key] == pytest.approx(expected[step][key], abs=1e-6), (step, key)


def _assert_exported_causal_lm(out: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize(("stage", "zero_stage"), [("ppo", 3), ("reward-shaping", 2)])
def test_ppo_and_reward_shaping_at_world_size_two_export_a_loadable_model(
    micro_rl: dict, tmp_path: Path, stage: str, zero_stage: int
) -> None:
    out = tmp_path / stage
    args = _rl_args(micro_rl, out, zero_stage=zero_stage, max_steps=2)
    lagrange_only = ("--lambda", "--threshold")
    if stage == "ppo":  # PPO has no cost side at all
        lagrange_only = (*lagrange_only, "--cost", "--episode")
    args = [a for a in args if not a.startswith(lagrange_only)]
    ok(torchrun([stage, *args]))
    _assert_exported_causal_lm(out)


def test_dpo_at_world_size_two_under_the_deepspeed_launcher_exports_a_loadable_model(
    micro_rl: dict, tmp_path: Path
) -> None:
    """ZeRO-3, the reference partitioned too, and 9 eval pairs in batches of 4: one rank evaluates
    two batches, the other one (its forwards must not wait for the other rank's)."""
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent))
    assert launcher, "the deepspeed launcher is not installed next to this python"
    out = tmp_path / "dpo"
    eval_pairs = tmp_path / "eval_pairs.jsonl"
    eval_pairs.write_text("".join(Path(micro_rl["pairs_test"]).read_text().splitlines(keepends=True)[:9]))
    args = {
        "model_name_or_path": micro_rl["actor"],
        "train_data": micro_rl["pairs"],
        "eval_data": eval_pairs,
        "per_device_eval_batch_size": 4,
        "output_dir": out,
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "max_length": 96,
        "zero_stage": 3,
        "device": "cpu",
        "num_threads": 1,
    }
    cmd = [launcher, "--num_gpus", "2", "--master_addr", "127.0.0.1", "--master_port", str(launcher_port())]
    done = launch(
        [*cmd, "--no_local_rank", "--module", "training", "dpo", *(f"--{k}={v}" for k, v in args.items())],
        cli_env(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1"),
    )
    ok(done)
    assert "dist_world_size=2" in done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train/steps"] == 2 and "eval/reward_accuracy" in summary
    _assert_exported_causal_lm(out)
