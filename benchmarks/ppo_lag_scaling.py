"""PPO-Lag at world size 1 and 2 on CPU with the same global batch (issue 12), in one command.

    .venv/bin/python benchmarks/ppo_lag_scaling.py [--steps 3] [--global-batch 16] [--keep DIR]

Builds a toy world, a tiny Llama (hidden 128, 2 layers) and seeded reward and cost models from it,
then runs ``python -m training ppo-lag`` under DeepSpeed ZeRO-2: once as one process, once as two
gloo ranks under ``torchrun``, each rank single-threaded. Both see the same global prompt batch
(``--global-batch`` prompts; per rank half of it at world size 2) and the same number of optimizer
steps per rollout batch. The step time is rank 0's wall time of a whole rollout batch (sampling,
scoring, advantages, λ, the updates), read from ``events.jsonl`` (tokens / tokens_per_s), for the
last of ``--steps`` rollout batches (the first ones pay for warm-up). λ is compared between the
two ranks in every rank's own part of every checkpoint; the last line is

    ppo_lag_ws2_over_ws1_step_time=… ppo_lag_ws2_lambda_max_abs_diff=…
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".dev" / "torch_extensions"))


def build_inputs(root: Path) -> dict[str, Path]:
    from tests.training.rl_fixtures import save_micro_score_model, write_prompts
    from training.config import InitTinyConfig
    from training.models.tiny import run_init_tiny
    from training.toyworld import WorldConfig, generate_world

    generate_world(root / "world", WorldConfig(noise=0.1, seed=0))
    run_init_tiny(InitTinyConfig(out=str(root / "actor"), corpus=str(root / "world" / "sft.jsonl")))
    return {
        "actor": root / "actor",
        "rm": save_micro_score_model(root / "actor", root / "rm", seed=1),
        "cm": save_micro_score_model(root / "actor", root / "cm", seed=2, bias=0.1),
        "train": write_prompts(root / "world", root / "prompts.jsonl", "train"),
    }


def stage_args(paths: dict[str, Path], out: Path, per_rank: int, steps: int) -> list[str]:
    values = {
        "model_name_or_path": paths["actor"],
        "reward_model_name_or_path": paths["rm"],
        "cost_model_name_or_path": paths["cm"],
        "train_data": paths["train"],
        "output_dir": out,
        "max_prompt_length": 64,
        "max_new_tokens": 32,
        "per_device_prompt_batch_size": per_rank,
        "per_device_train_batch_size": per_rank // 2,  # two optimizer steps per rollout batch
        "max_steps": 2 * steps,
        "save_steps": 2,
        "save_total_limit": steps,
        "zero_stage": 2,
        "lambda_lr": 0.5,
        "threshold": -1.0,
        "device": "cpu",
        "num_threads": 1,
    }
    return ["ppo-lag", *(f"--{k}={v}" for k, v in values.items())]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(cmd: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd[:6])} ...\n{done.stderr[-4000:]}")


def last_step_time(out: Path) -> tuple[float, dict[str, float]]:
    from training.events import read_events

    metrics = [e["metrics"] for e in read_events(out / "events.jsonl") if e["type"] == "metric"]
    last = [m for m in metrics if "train/tokens_per_s" in m][-1]
    return last["train/tokens"] / last["train/tokens_per_s"], last


def lambda_max_abs_diff(out: Path) -> tuple[float, int]:
    from training.engine.serialization import load_state

    worst, seen = 0.0, 0
    for checkpoint in sorted((out / "checkpoints").glob("step-*")):
        values = [
            math.exp(load_state(checkpoint / f"rank-{r:05d}", "rank_state")["objective"]["log_lambda"])
            for r in (0, 1)
        ]
        worst, seen = max(worst, abs(values[0] - values[1])), seen + 1
    if seen == 0:
        sys.exit("no checkpoint of the world-size-2 run found")
    return worst, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="rollout batches per run (the last is timed)")
    parser.add_argument("--global-batch", type=int, default=16, help="prompts per global rollout batch")
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one)")
    args = parser.parse_args()
    if args.global_batch % 4:
        sys.exit("--global-batch must be a multiple of 4")
    root = args.keep or Path(tempfile.mkdtemp(prefix="ppo_lag_scaling_"))
    root.mkdir(parents=True, exist_ok=True)
    paths = build_inputs(root)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    run([sys.executable, "-m", "training", *stage_args(paths, root / "ws1", args.global_batch, args.steps)])
    run(
        [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port())]
        + ["-m", "training", *stage_args(paths, root / "ws2", args.global_batch // 2, args.steps)]
    )
    t1, m1 = last_step_time(root / "ws1")
    t2, m2 = last_step_time(root / "ws2")
    diff, checked = lambda_max_abs_diff(root / "ws2")
    for name, seconds, m in (("ws1", t1, m1), ("ws2", t2, m2)):
        phases = " ".join(
            f"{k.split('/')[1]}={v * 1000:.0f}ms" for k, v in m.items() if k.startswith("timing/")
        )
        print(
            f"{name}: step {seconds * 1000:.0f} ms, {m['train/tokens']:.0f} tokens, "
            f"lambda {m['train/lambda']:.6f}; {phases}"
        )
    print(f"ws2 lambda compared between ranks at {checked} checkpoints")
    print(f"ppo_lag_ws2_over_ws1_step_time={t2 / t1:.3f} ppo_lag_ws2_lambda_max_abs_diff={diff:.3g}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
