"""One PPO-Lag step of ours against one PPO step of TRL's experimental PPOTrainer (issue 4, item 9).

    .venv/bin/python benchmarks/ppo_step.py [--batch 16] [--response-length 32] [--repeats 3]

Both sides get the same tiny Llama weights (``init-tiny`` on the toy-world corpus), the same prompts
(left-padded), the same batch, response budget, sampling (temperature 1, top_p 1), one PPO epoch
and one minibatch per step, fp32 on CPU with the same thread count. TRL (``trl==1.12.0``, the last
release with ``trl.experimental.ppo``) runs plain PPO: policy, reference, reward model and one
value model. We run PPO-Lag, which does more: a cost model, a second critic and λ.

Runs alternate (ours, TRL, ours, TRL, ...) in fresh processes; each process times ``--steps``
steps and drops the first (warm-up). Reported: the median step time, our time per phase
(generate, score, advantages, actor, critics, λ), tokens/s (prompt + response tokens per step /
step time) and generated tokens/s. Last line: ``ppo_lag_step_time_over_trl_ppo=<ours/TRL>``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PHASES = ("generate", "score", "advantages", "actor", "critics", "lambda")


# ---------------------------------------------------------------------- setup
def build_models(root: Path, batch: int) -> None:
    """Tiny LM, our reward/cost score models, TRL's sequence-classification copies, prompts."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from training.config import InitTinyConfig
    from training.models import load_score_model, load_tokenizer, save_score_model
    from training.models.tiny import run_init_tiny
    from training.toyworld import WorldConfig, generate_world

    generate_world(root / "world", WorldConfig(sft=2000, pairs=10, test_pairs=10, seed=0))
    run_init_tiny(
        InitTinyConfig(out=str(root / "lm"), corpus=str(root / "world" / "sft.jsonl"), layers=2, hidden=128)
    )
    tokenizer = load_tokenizer(str(root / "lm"))
    for name, seed in (("rm", 1), ("cm", 2)):
        torch.manual_seed(seed)
        ours = load_score_model(root / "lm")
        torch.nn.init.zeros_(ours.score_head.bias)  # TRL's score head has no bias: same function
        save_score_model(ours, root / name)
        tokenizer.save_pretrained(root / name)
        trl = AutoModelForSequenceClassification.from_pretrained(root / "lm", num_labels=1)
        with torch.no_grad():
            trl.score.weight.copy_(ours.score_head.weight)
        trl.save_pretrained(root / f"trl_{name}")
    rows = [json.loads(line) for line in (root / "world" / "prompts.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["split"] == "train"]
    step = max(1, len(rows) // (batch * 8))
    (root / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::step][: batch * 8]))


# -------------------------------------------------------------------- workers
def ours(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from training.algorithms.ppo_lagrangian import build_objective
    from training.algorithms.rl_trainer import PolicyTrainer
    from training.config import PPOLagConfig, build_config

    cfg = build_config(
        PPOLagConfig,
        {
            "model_name_or_path": str(root / "lm"),
            "reward_model_name_or_path": str(root / "rm"),
            "cost_model_name_or_path": str(root / "cm"),
            "train_data": str(root / "prompts.jsonl"),
            "output_dir": str(root / "ours"),
            "max_prompt_length": 64,
            "max_new_tokens": args.response_length,
            "per_device_prompt_batch_size": args.batch,
            "per_device_train_batch_size": args.batch,
            "resume": "never",
            "num_threads": args.threads,
            "device": "cpu",
            "seed": 0,
        },
    )
    trainer = PolicyTrainer(cfg, build_objective(cfg), "ppo-lag")
    trainer.prepare()
    plan = trainer.prompts.epoch_plan(args.batch, seed=0, epoch=0)
    steps = []
    for indices in plan[: args.steps]:
        trainer.timings = {}
        started = time.perf_counter()
        metrics = trainer.train_on_batch(indices)
        steps.append(
            {
                "seconds": time.perf_counter() - started,
                "tokens": metrics["train/tokens"],
                "generated": metrics["train/mean_generated_length"] * len(indices),
                **trainer.timings,
            }
        )
    return {"steps": steps}


def trl(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer, ppo_trainer

    from training.data import format_prompt
    from training.models import load_tokenizer

    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(str(root / "lm"), padding_side="left")
    rows = [json.loads(line) for line in (root / "prompts.jsonl").read_text().splitlines()]
    prompts = tokenizer([format_prompt(r["prompt"]) for r in rows])["input_ids"]
    times: list[float] = []
    collected: list[float] = []  # seconds inside TRL's own gc.collect() calls, per call
    gc_module = ppo_trainer.gc

    class TimedGC:  # instrumentation only: TRL calls gc.collect() twice per step itself
        @staticmethod
        def collect(*a: Any, **k: Any) -> int:
            started = time.perf_counter()
            found = gc_module.collect(*a, **k)
            collected.append(time.perf_counter() - started)
            return found

    ppo_trainer.gc = TimedGC

    class Clock(TrainerCallback):
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            times.append(time.perf_counter())

        def on_step_end(self, *a: Any, **k: Any) -> None:
            times.append(time.perf_counter())

    config = PPOConfig(
        output_dir=str(root / "trl"),
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        num_ppo_epochs=1,
        num_mini_batches=1,
        total_episodes=args.batch * args.steps,
        local_rollout_forward_batch_size=args.batch,
        response_length=args.response_length,
        temperature=1.0,
        learning_rate=1e-5,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        num_sample_generations=0,
        stop_token_id=tokenizer.eos_token_id,
        logging_steps=1,
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = PPOTrainer(
        args=config,
        processing_class=tokenizer,
        model=AutoModelForCausalLM.from_pretrained(root / "lm"),
        ref_model=AutoModelForCausalLM.from_pretrained(root / "lm"),
        reward_model=AutoModelForSequenceClassification.from_pretrained(root / "trl_rm", num_labels=1),
        value_model=AutoModelForSequenceClassification.from_pretrained(root / "trl_rm", num_labels=1),
        train_dataset=Dataset.from_dict({"input_ids": prompts}),
        callbacks=[Clock()],
    )
    trainer.train()
    tokens = statistics.mean(len(p) for p in prompts) * args.batch + args.response_length * args.batch
    # TRL calls gc.collect() after the rollout and again after on_step_end, so interval i (between
    # two on_step_end callbacks) holds the post-step call of update i-1 and the rollout call of i.
    return {
        "steps": [
            {"seconds": b - a, "tokens": tokens, "gc": sum(collected[max(0, 2 * i - 1) : 2 * i + 1])}
            for i, (a, b) in enumerate(zip(times, times[1:], strict=False))
        ]
    }


# ----------------------------------------------------------------- reporting
def run_worker(kind: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--root",
        str(root),
        "--batch",
        str(args.batch),
        "--response-length",
        str(args.response_length),
        "--steps",
        str(args.steps),
        "--threads",
        str(args.threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: dict[str, list[dict[str, Any]]]) -> float:
    steps = {k: [s for run in runs for s in run["steps"][1:]] for k, runs in results.items()}  # drop warm-up
    median = {k: statistics.median(s["seconds"] for s in v) for k, v in steps.items()}
    for kind in ("ours", "trl"):
        tokens = statistics.median(s["tokens"] / s["seconds"] for s in steps[kind])
        label = "ours (PPO-Lag, 6 networks)" if kind == "ours" else "TRL PPOTrainer (PPO, 4 networks)"
        print(
            f"{label:<34} median step {median[kind] * 1000:8.1f} ms   {tokens:9.0f} tokens/s   "
            f"({len(steps[kind])} steps)"
        )
    print(
        "\nours per phase (median ms):  "
        + "  ".join(
            f"{p} {statistics.median(s.get(p, 0.0) for s in steps['ours']) * 1000:.1f}" for p in PHASES
        )
    )
    generated = statistics.median(s["generated"] / s["generate"] for s in steps["ours"])
    print(f"ours generation: {generated:.0f} generated tokens/s")
    without_gc = statistics.median(s["seconds"] - s["gc"] for s in steps["trl"])
    print(
        f"TRL step without its own gc.collect() calls: {without_gc * 1000:.1f} ms "
        f"(ours / that = {median['ours'] / without_gc:.3f}; for information, not the headline)"
    )
    return median["ours"] / median["trl"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="prompts per step (one minibatch)")
    parser.add_argument("--response-length", type=int, default=32, help="new tokens per response")
    parser.add_argument("--steps", type=int, default=5, help="steps per process (the first is warm-up)")
    parser.add_argument("--repeats", type=int, default=3, help="processes per side, alternating")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in every process")
    parser.add_argument("--worker", choices=("ours", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import logging

        logging.basicConfig(level=logging.WARNING)
        from training.engine.runtime import quiet_libraries

        quiet_libraries()
        result = (ours if args.worker == "ours" else trl)(Path(args.root), args)
        print(json.dumps(result))
        return 0
    from training.engine.runtime import quiet_libraries

    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="ppo-step-") as tmp:
        root = Path(tmp)
        build_models(root, args.batch)
        results: dict[str, list[dict[str, Any]]] = {"ours": [], "trl": []}
        for _ in range(args.repeats):
            for kind in ("ours", "trl"):
                results[kind].append(run_worker(kind, root, args))
        print(
            f"batch {args.batch} prompts, {args.response_length} new tokens, {args.threads} threads, "
            f"{args.repeats} alternating processes per side"
        )
        ratio = report(results)
    print(f"ppo_lag_step_time_over_trl_ppo={ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
