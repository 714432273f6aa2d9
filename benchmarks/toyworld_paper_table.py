"""The Safe RLHF paper's result in miniature, on the toy world (issue 4, item 8).

    .venv/bin/python benchmarks/toyworld_paper_table.py [--seeds 2] [--steps 150] [--jobs 2]

1. Setup, with the issue-3 stages: a toy world (8000 SFT rows, 3000 noisy preference pairs), a
   tiny Llama (hidden 128, 2 layers), SFT, then a reward model and a cost model trained from the
   SFT model on the noisy pairs (side by side, one thread each).
2. The same budget (steps, prompts per step, lengths, KL coefficient, learning rates) for plain PPO,
   reward shaping R - ν·C with ν ∈ {0.1, 1, 10}, and PPO-Lag with a cost threshold below the SFT
   policy's mean cost, so that the constraint binds. Every run is evaluated on the held-out prompts
   every ``--eval-every`` steps.
3. One row per method, judged by the toy world's programmatic judges, not by the learned models:
   true helpfulness and the true unsafe rate on risky prompts (mean of the last ``--last-evals``
   evaluations, then over seeds), beside the mean learned reward and cost. PPO-Lag's λ trajectory
   goes to ``lambda.png``. Runs go two at a time in single-thread processes (docs/design/toyworld.md: that
   uses 2 cores better than one process with 2 threads).

The last line is ``ppo_lag_unsafe_rate=<x> ppo_lag_helpfulness=<x> ppo_unsafe_rate=<x>
best_safe_shaping_helpfulness=<x> constraint_met=<true|false>``: unsafe rates are true rates on
risky held-out prompts; ``best_safe_shaping_helpfulness`` is the best true helpfulness among shaping
runs whose unsafe rate is at most PPO-Lag's (``nan`` if none); ``constraint_met`` says whether
PPO-Lag's mean learned cost on held-out prompts is at most the threshold.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPING_NUS = (0.1, 1.0, 10.0)
COMMON_RL = {  # the budget every method gets (tiny-model learning rates; the paper's β = 0.1)
    "max_prompt_length": 40,
    "max_new_tokens": 24,
    "kl_coeff": 0.1,
    "actor_learning_rate": 2e-4,
    "critic_learning_rate": 1e-4,
    "epochs": 1000,
    "save_steps": 100000,
    "resume": "never",
    "ground_truth": "toyworld",
    "num_threads": 1,
}


def _quiet() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    from training.engine.runtime import quiet_libraries

    quiet_libraries()


# ---------------------------------------------------------------------- setup
def build_world(work: Path) -> dict[str, Any]:
    from training.toyworld import WorldConfig, generate_world

    manifest = generate_world(work / "world", WorldConfig(sft=8000, pairs=3000, seed=0))
    rows = [json.loads(line) for line in (work / "world" / "prompts.jsonl").read_text().splitlines()]
    for split in ("train", "eval"):
        with (work / f"prompts_{split}.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows if r["split"] == split)
    return manifest["stats"]


def build_sft(work: Path, threads: int) -> None:
    from training.algorithms.sft import run_sft
    from training.config import InitTinyConfig, SFTConfig, build_config
    from training.models.tiny import run_init_tiny

    run_init_tiny(
        InitTinyConfig(out=str(work / "tiny"), corpus=str(work / "world" / "sft.jsonl"), layers=2, hidden=128)
    )
    run_sft(
        build_config(
            SFTConfig,
            {
                "model_name_or_path": str(work / "tiny"),
                "train_data": str(work / "world" / "sft.jsonl"),
                "output_dir": str(work / "sft"),
                "epochs": 3,
                "per_device_train_batch_size": 32,
                "gradient_accumulation_steps": 1,
                "learning_rate": 3e-3,
                "max_length": 128,
                "logging_steps": 100,
                "num_threads": threads,
                "resume": "never",
            },
        )
    )


def train_score_model(work: str, kind: str) -> dict[str, float]:
    """Reward or cost model from the SFT model on the noisy pairs (runs in a worker process)."""
    _quiet()
    from training.algorithms.cost_model import run_cost
    from training.algorithms.reward_model import run_reward
    from training.config import CostModelConfig, RewardModelConfig, build_config

    root = Path(work)
    values = {
        "model_name_or_path": str(root / "sft"),
        "train_data": str(root / "world" / "pairs_train.jsonl"),
        "eval_data": str(root / "world" / "pairs_test.jsonl"),
        "output_dir": str(root / kind),
        "epochs": 2,
        "per_device_train_batch_size": 32,
        "learning_rate": 1e-3,
        "max_length": 128,
        "logging_steps": 50,
        "num_threads": 1,
        "resume": "never",
    }
    if kind == "rm":
        return run_reward(build_config(RewardModelConfig, values))
    return run_cost(build_config(CostModelConfig, values))


# ------------------------------------------------------------------- RL runs
def run_method(work: str, method: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """Train one method from the SFT model; return its eval and λ trajectories (worker process)."""
    _quiet()
    import torch

    torch.set_num_threads(1)
    from training.algorithms.ppo import run_ppo
    from training.algorithms.ppo_lagrangian import run_ppo_lag
    from training.algorithms.reward_shaping import run_reward_shaping
    from training.config import PPOConfig, PPOLagConfig, RewardShapingConfig, build_config
    from training.events import read_events

    root = Path(work)
    out = root / "runs" / f"{method}-seed{seed}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: events.jsonl is appended to otherwise
    values = {
        **COMMON_RL,
        "model_name_or_path": str(root / "sft"),
        "reward_model_name_or_path": str(root / "rm"),
        "train_data": str(root / "prompts_train.jsonl"),
        "eval_data": str(root / "prompts_eval.jsonl"),
        "output_dir": str(out),
        "seed": seed,
        "max_steps": options["steps"],
        "eval_steps": options["eval_every"],
        "per_device_prompt_batch_size": options["batch"],
        "per_device_train_batch_size": options["batch"],
        "per_device_eval_batch_size": 200,
    }
    started = time.perf_counter()
    if method == "ppo":
        run_ppo(build_config(PPOConfig, values))
    else:
        values["cost_model_name_or_path"] = str(root / "cm")
        if method == "ppo-lag":
            values["threshold"] = options["threshold"]
            run_ppo_lag(build_config(PPOLagConfig, values))
        else:
            values["nu"] = float(method.removeprefix("shaping-nu"))
            run_reward_shaping(build_config(RewardShapingConfig, values))
    metrics = [e for e in read_events(out / "events.jsonl") if e["type"] == "metric"]
    evals = [{"step": e["step"], **e["metrics"]} for e in metrics if "eval/true_helpfulness" in e["metrics"]]
    lam = [(e["step"], e["metrics"]["train/lambda"]) for e in metrics if "train/lambda" in e["metrics"]]
    window = [
        (e["step"], e["metrics"]["train/episode_cost"])
        for e in metrics
        if "train/episode_cost" in e["metrics"]
    ]
    return {
        "method": method,
        "seed": seed,
        "evals": evals,
        "lambda": lam,
        "window_cost": window,
        "seconds": time.perf_counter() - started,
    }


def run_sft_eval(work: str, options: dict[str, Any]) -> dict[str, Any]:
    """The starting point, judged the same way (several samples per held-out prompt)."""
    _quiet()
    import torch

    torch.set_num_threads(1)
    from training.config import GenerateConfig, build_config
    from training.evaluation.generate import run_generate

    root = Path(work)
    rows = []
    for k in range(options["last_evals"]):
        summary = run_generate(
            build_config(
                GenerateConfig,
                {
                    "model_name_or_path": str(root / "sft"),
                    "prompt_data": str(root / "prompts_eval.jsonl"),
                    "output_dir": str(root / "runs" / f"sft-eval{k}"),
                    "reward_model_name_or_path": str(root / "rm"),
                    "cost_model_name_or_path": str(root / "cm"),
                    "max_prompt_length": COMMON_RL["max_prompt_length"],
                    "max_new_tokens": COMMON_RL["max_new_tokens"],
                    "ground_truth": "toyworld",
                    "seed": 7 + k,
                    "per_device_eval_batch_size": 200,
                    "num_threads": 1,
                },
            )
        )
        rows.append({"step": 0, **summary})
    return {"method": "sft", "seed": 0, "evals": rows, "lambda": [], "window_cost": [], "seconds": 0.0}


# ----------------------------------------------------------------- reporting
KEYS = {
    "helpfulness": "eval/true_helpfulness",
    "help_benign": "eval/true_helpfulness_benign",
    "help_risky": "eval/true_helpfulness_risky",
    "unsafe_risky": "eval/true_unsafe_ratio_risky",
    "reward": "eval/reward",
    "cost": "eval/cost",
}


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.mean(finite) if finite else float("nan")


def summarise(results: list[dict[str, Any]], last: int) -> dict[str, dict[str, float]]:
    """Per method: the mean over seeds of each seed's mean over its last ``last`` evaluations."""
    table: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r["method"] for r in results):
        runs = [r for r in results if r["method"] == method]
        row: dict[str, float] = {"seeds": float(len(runs))}
        for name, key in KEYS.items():
            per_seed = [_finite_mean([e.get(key, float("nan")) for e in r["evals"][-last:]]) for r in runs]
            row[name] = _finite_mean(per_seed)
            finite = [v for v in per_seed if math.isfinite(v)]
            row[name + "_sd"] = statistics.stdev(finite) if len(finite) > 1 else 0.0
        table[method] = row
    return table


def print_table(table: dict[str, dict[str, float]], threshold: float) -> None:
    print(
        f"\n{'method':<16}{'true help':>14}{'benign':>8}{'risky':>8}{'unsafe(risky)':>16}"
        f"{'RM reward':>11}{'CM cost':>9}"
    )
    for method, row in table.items():
        label = f"ppo-lag(d={threshold:g})" if method == "ppo-lag" else method
        print(
            f"{label:<16}{row['helpfulness']:>8.2f} ±{row['helpfulness_sd']:<4.2f}{row['help_benign']:>8.2f}"
            f"{row['help_risky']:>8.2f}{row['unsafe_risky']:>10.1%} ±{row['unsafe_risky_sd']:<4.0%}"
            f"{row['reward']:>11.2f}{row['cost']:>9.2f}"
        )


def plot_lambda(results: list[dict[str, Any]], threshold: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, dpi=100)
    for run in (r for r in results if r["method"] == "ppo-lag"):
        top.plot(*zip(*run["lambda"], strict=True), label=f"seed {run['seed']}")
        bottom.plot(*zip(*run["window_cost"], strict=True), label=f"seed {run['seed']}")
    bottom.axhline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    top.set_ylabel("λ")
    top.set_title("PPO-Lag on the toy world: λ and the moving-window episode cost")
    bottom.set_ylabel("window mean cost (CM)")
    bottom.set_xlabel("optimizer step")
    top.legend()
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def verdict(table: dict[str, dict[str, float]], threshold: float) -> str:
    lag, ppo = table["ppo-lag"], table["ppo"]
    safe_shaping = [
        table[m]["helpfulness"]
        for m in table
        if m.startswith("shaping") and table[m]["unsafe_risky"] <= lag["unsafe_risky"]
    ]
    best = max(safe_shaping) if safe_shaping else float("nan")
    met = "true" if lag["cost"] <= threshold else "false"
    return (
        f"ppo_lag_unsafe_rate={lag['unsafe_risky']:.4f} ppo_lag_helpfulness={lag['helpfulness']:.4f} "
        f"ppo_unsafe_rate={ppo['unsafe_risky']:.4f} best_safe_shaping_helpfulness={best:.4f} "
        f"constraint_met={met}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="RL seeds per method")
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps per run")
    parser.add_argument("--batch", type=int, default=48, help="prompts per step (one optimizer step)")
    parser.add_argument("--eval-every", type=int, default=20, help="held-out evaluation period in steps")
    parser.add_argument("--last-evals", type=int, default=3, help="evaluations averaged at the end of a run")
    parser.add_argument("--threshold", type=float, default=-3.5, help="PPO-Lag cost threshold (CM units)")
    parser.add_argument("--jobs", type=int, default=2, help="single-thread worker processes")
    parser.add_argument("--workdir", default=None, help="keep everything here (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="reuse the SFT, RM and CM found in --workdir")
    parser.add_argument("--plot", default="artifacts/benchmarks/toyworld_lambda.png", help="λ trajectory PNG")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    _quiet()
    with tempfile.TemporaryDirectory(prefix="paper-table-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        reuse = args.reuse and (work / "sft" / "summary.json").is_file()
        stats = build_world(work)
        print(
            f"toy world: SFT corpus unsafe on risky prompts {stats['sft_risky_unsafe_rate']:.0%}, "
            f"safe-helpful {stats['sft_risky_safe_helpful_rate']:.0%}",
            flush=True,
        )
        if not reuse:
            build_sft(work, threads=args.jobs)
        print(f"setup: SFT done at {time.perf_counter() - started:.0f}s", flush=True)
        options = {
            "steps": args.steps,
            "batch": args.batch,
            "eval_every": args.eval_every,
            "threshold": args.threshold,
            "last_evals": args.last_evals,
        }
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
            if reuse:
                scores = {k: json.loads((work / k / "summary.json").read_text()) for k in ("rm", "cm")}
            else:
                scores = {k: pool.submit(train_score_model, str(work), k) for k in ("rm", "cm")}
                scores = {k: f.result() for k, f in scores.items()}
            print(
                f"setup: RM eval accuracy {scores['rm']['eval/accuracy']:.3f}, CM sign accuracy "
                f"{scores['cm']['eval/accuracy_sign']:.3f} at {time.perf_counter() - started:.0f}s",
                flush=True,
            )
            methods = ["ppo-lag", "ppo", *(f"shaping-nu{nu:g}" for nu in SHAPING_NUS)]
            jobs = [
                pool.submit(run_method, str(work), m, 1000 + s, options)
                for s in range(args.seeds)
                for m in methods
            ]
            jobs.append(pool.submit(run_sft_eval, str(work), options))
            results = [job.result() for job in jobs]
        results.sort(key=lambda r: ["sft", *methods].index(r["method"]))
        table = summarise(results, args.last_evals)
        print_table(table, args.threshold)
        (work / "results.json").write_text(json.dumps({"table": table, "runs": results}, indent=1))
        png = Path(args.plot)
        png.parent.mkdir(parents=True, exist_ok=True)
        plot_lambda(results, args.threshold, png)
        run_seconds = {
            m: round(statistics.mean(r["seconds"] for r in results if r["method"] == m)) for m in methods
        }
        print(
            f"\nseeds {[1000 + s for s in range(args.seeds)]}, {args.steps} steps x {args.batch} prompts, "
            f"mean of the last {args.last_evals} evals (every {args.eval_every} steps) on "
            f"{len((work / 'prompts_eval.jsonl').read_text().splitlines())} held-out prompts; "
            f"λ trajectory: {png}; seconds per run {json.dumps(run_seconds)}; "
            f"total {time.perf_counter() - started:.0f}s"
        )
        print(verdict(table, args.threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
