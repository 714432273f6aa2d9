"""DeepSpeed for real on CPU: a ZeRO-2 reward-model run with kill-and-resume, and a 2-process launcher run.

The first DeepSpeed start JIT-builds its shared-memory comm op (minutes); it is cached under
TORCH_EXTENSIONS_DIR (``<repo>/.dev/torch_extensions`` by default, see conftest).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.conftest import REPO, cli_env, free_port, losses_from_events
from training.config import RewardModelConfig
from training.engine.deepspeed_config import build_deepspeed_config
from training.events import read_events

pytestmark = pytest.mark.deepspeed


def _args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path",
        str(model),
        "--train_data",
        str(data / "pairs_train.jsonl"),
        "--eval_data",
        str(data / "pairs_test.jsonl"),
        "--output_dir",
        str(out),
        "--epochs",
        "1",
        "--per_device_train_batch_size",
        "8",
        "--per_device_eval_batch_size",
        "64",
        "--learning_rate",
        "1e-3",
        "--max_length",
        "96",
        "--logging_steps",
        "1",
        "--num_threads",
        "1",
        *extra,
    ]


def test_deepspeed_config_follows_the_stage_config() -> None:
    base = {"model_name_or_path": "m", "train_data": "t", "output_dir": "o"}
    z3 = build_deepspeed_config(
        RewardModelConfig(
            **base, zero_stage=3, offload="all", max_grad_norm=0.5, gradient_accumulation_steps=4
        ),
        world_size=8,
        bf16=True,
    )
    assert z3["train_batch_size"] == 16 * 8 * 4 and z3["gradient_clipping"] == 0.5 and z3["bf16"]["enabled"]
    assert z3["zero_optimization"]["stage"] == 3
    assert {"offload_param", "offload_optimizer", "stage3_max_live_parameters"} <= set(
        z3["zero_optimization"]
    )
    z1 = build_deepspeed_config(
        RewardModelConfig(**base, zero_stage=1, offload="optimizer"), world_size=1, bf16=False
    )
    assert "offload_param" not in z1["zero_optimization"] and "offload_optimizer" in z1["zero_optimization"]
    assert "optimizer" not in z1  # a client AdamW: no fused-Adam JIT build


def test_zero2_reward_model_trains_and_resumes_exactly_on_cpu(
    tmp_path: Path, micro_model: Path, toy_world: Path, cli
) -> None:
    extra = ("--zero_stage", "2", "--max_steps", "12", "--save_steps", "4")
    whole = cli(["reward", *_args(micro_model, toy_world, tmp_path / "whole", *extra)])
    assert whole.returncode == 0, whole.stderr[-3000:]
    summary = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert summary["train/steps"] == 12 and 0.0 <= summary["eval/accuracy"] <= 1.0
    ckpt = tmp_path / "whole" / "checkpoints"
    latest = ckpt / (ckpt / "latest").read_text().strip()
    assert (latest / "deepspeed_state.safetensors").is_file() and (latest / "COMPLETE").is_file()

    out = tmp_path / "resumed"
    killed = cli(["reward", *_args(micro_model, toy_world, out, *extra)], TRAINING_TEST_CRASH_AFTER_STEP="6")
    assert killed.returncode == 75
    resumed = cli(["reward", *_args(micro_model, toy_world, out, *extra)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference, after = (
        losses_from_events(tmp_path / "whole" / "events.jsonl"),
        losses_from_events(out / "events.jsonl"),
    )
    assert sorted(after) == sorted(reference) == list(range(1, 13))
    for step, loss in reference.items():
        assert after[step] == pytest.approx(loss, abs=1e-6), step


def test_two_process_deepspeed_launcher_run(tmp_path: Path, micro_model: Path, toy_world: Path) -> None:
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent))
    assert launcher, "the deepspeed launcher is not installed next to this python"
    out = tmp_path / "ds2"
    cmd = [
        launcher,
        "--num_gpus",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "--no_local_rank",
        "--module",
        "training",
        "reward",
        *_args(micro_model, toy_world, out, "--zero_stage", "2", "--max_steps", "6", "--save_steps", "3"),
    ]
    done = subprocess.run(
        cmd,
        cwd=REPO,
        env=cli_env(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "dist_world_size=2" in done.stdout + done.stderr
    events = read_events(out / "events.jsonl")
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(len(seqs)))  # rank 0 alone writes events
    assert [e["status"] for e in events if e["type"] == "status"] == ["started", "completed"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train/steps"] == 6 and "eval/accuracy" in summary
    assert (out / "model.safetensors").is_file() and (out / "score_head.safetensors").is_file()
