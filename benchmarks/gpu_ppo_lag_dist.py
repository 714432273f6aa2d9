"""PPO-Lag on 2 GPUs under ZeRO-2 and ZeRO-3 through ``python -m training ppo-lag`` (issue 12).

    python benchmarks/gpu_ppo_lag_dist.py --model DIR --prompts FILE --workdir DIR [--smoke]

The actor is ``--model`` (a Qwen2.5-0.5B-shaped random model that ``_gpu_check.py prepare``
builds); the reward and cost models are the same backbone with seeded score heads. Each ZeRO stage
is one ``torchrun --nproc_per_node 2`` run of two rollout batches (64 prompts globally, 32 per GPU,
128 new tokens, two optimizer steps per batch); the second batch is measured (the first pays for
warm-up). Reported per stage, from rank 0's ``events.jsonl``: tokens/s of the whole step (sampling,
scoring, updates; both GPUs' tokens), the step time, per-phase times, and the peak allocated memory
of the fullest GPU; λ is compared between the ranks in their checkpoint parts. ``--smoke`` runs
the same on CPU (gloo, tiny shapes as prepared with GPU_CHECK_SMOKE=1). JSON goes to
``$OUT/gpu_ppo_lag_dist.json``; the last line is

    gpu_ppo_lag_ws2_zero2_tokens_per_s=… zero2_peak_gib=… zero3_tokens_per_s=… zero3_peak_gib=… lambda_equal=…
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def score_models(model: Path, work: Path) -> tuple[Path, Path]:
    from tests.training.rl_fixtures import save_micro_score_model

    rm, cm = work / "rm", work / "cm"
    if not (rm / "config.json").is_file():
        save_micro_score_model(model, rm, seed=1)
        save_micro_score_model(model, cm, seed=2, bias=0.1)
    return rm, cm


def stage_args(
    model: Path, rm: Path, cm: Path, prompts: Path, out: Path, zero: int, smoke: bool
) -> list[str]:
    values: dict[str, Any] = {
        "model_name_or_path": model,
        "reward_model_name_or_path": rm,
        "cost_model_name_or_path": cm,
        "train_data": prompts,
        "output_dir": out,
        "max_prompt_length": 64 if smoke else 192,
        "max_new_tokens": 16 if smoke else 128,
        "per_device_prompt_batch_size": 4 if smoke else 32,
        "per_device_train_batch_size": 2 if smoke else 16,
        "max_steps": 4,
        "save_steps": 4,
        "zero_stage": zero,
        "lambda_lr": 0.5,
        "threshold": -1.0,
        "device": "cpu" if smoke else "cuda",
        "actor_gradient_checkpointing": not smoke,
        "critic_gradient_checkpointing": not smoke,
    }
    if smoke:
        values["num_threads"] = 1
    return ["ppo-lag", *(f"--{k}={v}" for k, v in values.items())]


def measured(out: Path) -> dict[str, Any]:
    from training.engine.serialization import load_state
    from training.events import read_events

    metrics = [e["metrics"] for e in read_events(out / "events.jsonl") if e["type"] == "metric"]
    last = [m for m in metrics if "train/tokens_per_s" in m][-1]
    checkpoint = sorted((out / "checkpoints").glob("step-*"))[-1]
    lambdas = [
        load_state(checkpoint / f"rank-{r:05d}", "rank_state")["objective"]["log_lambda"] for r in (0, 1)
    ]
    return {
        "tokens_per_s": last["train/tokens_per_s"],
        "step_s": last["train/tokens"] / last["train/tokens_per_s"],
        "tokens": last["train/tokens"],
        "peak_gib": last.get("train/peak_gpu_memory_gib"),
        "phases_s": {k.split("/")[1]: v for k, v in last.items() if k.startswith("timing/")},
        "lambda_equal": lambdas[0] == lambdas[1],
        "finite": all(v == v for k, v in last.items() if k.endswith("_loss")),
    }


def run_stage(args: argparse.Namespace, zero: int, rm: Path, cm: Path) -> dict[str, Any]:
    out = args.workdir / f"zero{zero}"
    shutil.rmtree(out, ignore_errors=True)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    cmd = [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    cmd += ["-m", "training", *stage_args(args.model, rm, cm, args.prompts, out, zero, args.smoke)]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1" if args.smoke else "4")
    if args.smoke:
        env["DS_ACCELERATOR"] = "cpu"
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    (args.workdir / f"zero{zero}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        return {"ok": False, "exit": done.returncode, "tail": done.stderr[-2000:]}
    return {"ok": True, "wall_s": time.perf_counter() - started, **measured(out)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--prompts", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="CPU rehearsal: gloo, tiny shapes")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not args.smoke:
        import torch

        if torch.cuda.device_count() < 2:
            skipped = json.dumps({"skipped": f"needs 2 GPUs, found {torch.cuda.device_count()}"})
            if "OUT" in os.environ:
                Path(os.environ["OUT"], "gpu_ppo_lag_dist.json").write_text(skipped)
            print(skipped)
            return 0
    rm, cm = score_models(args.model, args.workdir)
    results = {f"zero{z}": run_stage(args, z, rm, cm) for z in (2, 3)}
    if "OUT" in os.environ:
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        Path(os.environ["OUT"], "gpu_ppo_lag_dist.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    z2, z3 = results["zero2"], results["zero3"]
    ok = all(r["ok"] and r["lambda_equal"] and r["finite"] for r in (z2, z3))

    def fmt(result: dict[str, Any], key: str) -> str:
        value = result.get(key)
        return "nan" if value is None else f"{value:.3g}"

    print(
        f"gpu_ppo_lag_ws2_zero2_tokens_per_s={fmt(z2, 'tokens_per_s')} zero2_peak_gib={fmt(z2, 'peak_gib')} "
        f"zero3_tokens_per_s={fmt(z3, 'tokens_per_s')} zero3_peak_gib={fmt(z3, 'peak_gib')} "
        f"lambda_equal={str(ok).lower()}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
