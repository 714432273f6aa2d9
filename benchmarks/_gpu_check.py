"""Helpers of benchmarks/gpu_check.sh (run on a GPU machine; no hub, no datasets, no trl needed).

Subcommands:
  prepare OUT        toy world with long pairs, its BPE tokenizer, and a random Qwen2.5-0.5B-shaped
                     LM (from a config, no download) saved as the "SFT" directory
  matmul OUT         bf16 8192^3 torch.mm ceiling on this GPU
  analyse OUT ...    MFU from a run's events and the resume parity of two runs
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Qwen2.5-0.5B's published shape (config.json of Qwen/Qwen2.5-0.5B), initialised at random.
QWEN25_05B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1e6,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
# GPU_CHECK_SMOKE=1 rehearses the whole script on a CPU with a 2-layer model of the same family.
SMOKE = os.environ.get("GPU_CHECK_SMOKE") == "1"
SMOKE_SHAPE = {
    **QWEN25_05B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
H100_BF16_PEAK = 989e12


def _long_pairs(src: Path, dst: Path, target_clauses: int, seed: int = 0) -> None:
    """PKU rows whose responses are many toy responses joined (~250-500 tokens), labels recomputed."""
    from training.toyworld import judge_harm, judge_helpfulness, prompt_topic, sample_response

    rng = random.Random(seed)
    rows = [json.loads(line) for line in src.read_text().splitlines()]
    with dst.open("w") as fh:
        for row in rows:
            topic = prompt_topic(row["prompt"])
            texts = []
            for _ in range(2):
                parts = [
                    sample_response(rng, topic)[1]
                    for _ in range(rng.randint(target_clauses // 2, target_clauses))
                ]
                texts.append(" ".join(parts))
            h = [judge_helpfulness(row["prompt"], t) for t in texts]
            c = [judge_harm(row["prompt"], t) for t in texts]
            fh.write(
                json.dumps(
                    {
                        "prompt": row["prompt"],
                        "response_0": texts[0],
                        "response_1": texts[1],
                        "better_response_id": 0 if h[0] >= h[1] else 1,
                        "safer_response_id": 0 if c[0].cost <= c[1].cost else 1,
                        "is_response_0_safe": c[0].is_safe,
                        "is_response_1_safe": c[1].is_safe,
                    }
                )
                + "\n"
            )


def prepare(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from training.models.tiny import iter_corpus, train_tokenizer
    from training.toyworld import WorldConfig, generate_world

    world = out / "world"
    generate_world(world, WorldConfig(pairs=1200, test_pairs=128, sft=2000, seed=0))
    _long_pairs(world / "pairs_train.jsonl", out / "pairs_long.jsonl", target_clauses=24)
    _long_pairs(world / "pairs_test.jsonl", out / "pairs_long_test.jsonl", target_clauses=24, seed=1)
    tokenizer = train_tokenizer(iter_corpus(world / "sft.jsonl"), 1024, 4096)
    config = Qwen2Config(
        **(SMOKE_SHAPE if SMOKE else QWEN25_05B),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    with torch.device("cpu" if SMOKE else "cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out / "qwen05b")
    tokenizer.save_pretrained(out / "qwen05b")
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"parameters": n, "model_dir": str(out / "qwen05b")}))


def matmul(out: Path) -> None:
    import torch

    n, device, dtype = (1024, "cpu", torch.float32) if SMOKE else (8192, "cuda", torch.bfloat16)
    sync = (lambda: None) if SMOKE else torch.cuda.synchronize
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(10):
        start = time.perf_counter()
        for _ in range(10):
            torch.mm(a, b)
        sync()
        best = min(best, (time.perf_counter() - start) / 10)
    name = "cpu (smoke)" if SMOKE else torch.cuda.get_device_name()
    result = {"bf16_mm_flops": 2 * n**3 / best, "device": name}
    (out / "matmul.json").write_text(json.dumps(result))
    print(json.dumps(result))


def _losses(events: Path) -> dict[int, float]:
    from training.events import read_events

    return {
        e["step"]: e["metrics"]["train/loss"]
        for e in read_events(events)
        if e["type"] == "metric" and "train/loss" in e["metrics"]
    }


def _flops_per_token(model_dir: Path, data: Path, max_length: int) -> tuple[float, dict]:
    """Training FLOPs per real token (docs/design/training_anchors.md §4.2-4.3, scalar head:
    N_head = d), with the
    attention term at the data's token-weighted sequence length sum(s^2)/sum(s)."""
    from training.data import PreferenceDataset
    from training.models import load_tokenizer

    cfg = json.loads((model_dir / "config.json").read_text())
    d, layers, f = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    h, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    dh = d // h
    n_dense = layers * (d * (h * dh + 2 * kv * dh) + h * dh * d + 3 * d * f)
    ds = PreferenceDataset(str(data), load_tokenizer(str(model_dir)), max_length)
    lengths = [len(x) for x in ds.first + ds.second]
    s_eff = sum(s * s for s in lengths) / sum(lengths)
    per_token = 3 * (2 * (n_dense + d) + 2 * layers * h * dh * s_eff)
    return per_token, {"n_dense": n_dense, "mean_len": statistics.mean(lengths), "s_eff": s_eff}


def analyse(out: Path, run: Path, killed: Path, model_dir: Path, data: Path, max_length: int) -> int:
    from training.events import read_events

    peak = json.loads((out / "matmul.json").read_text())["bf16_mm_flops"]
    windows = [
        e["metrics"]["train/tokens_per_s"]
        for e in read_events(run / "events.jsonl")
        if e["type"] == "metric" and "train/tokens_per_s" in e["metrics"]
    ][1:]  # first window: warm-up
    tokens_per_s = statistics.median(windows)
    per_token, shape = _flops_per_token(model_dir, data, max_length)
    flops = tokens_per_s * per_token
    reference, resumed = _losses(run / "events.jsonl"), _losses(killed / "events.jsonl")
    resumed_events = [e for e in read_events(killed / "events.jsonl") if e.get("status") == "resumed"]
    common = sorted(set(reference) & set(resumed))
    diffs = {s: abs(reference[s] - resumed[s]) for s in common}
    summary = json.loads((run / "summary.json").read_text())
    result = {
        "tokens_per_s": tokens_per_s,
        "model_flops_per_s": flops,
        "flops_per_token": per_token,
        **shape,
        "mfu_vs_989e12": flops / H100_BF16_PEAK,
        "mfu_vs_measured_peak": flops / peak,
        "measured_peak": peak,
        "resume": {
            "resumed_from": [e["step"] for e in resumed_events],
            "steps_compared": len(common),
            "max_abs_loss_diff": max(diffs.values()) if diffs else None,
            "steps_equal_to_1e-6": sum(v <= 1e-6 for v in diffs.values()),
        },
        "summary": summary,
    }
    # bf16 GPU kernels are not bitwise deterministic run to run; fp32 on CPU is (smoke: 1e-6).
    tolerance = 1e-6 if SMOKE else 2e-2
    result["resume"]["tolerance"] = tolerance
    ok = bool(resumed_events) and len(common) == len(reference) and bool(diffs)
    ok = ok and max(diffs.values()) <= tolerance
    result["resume"]["ok"] = ok
    (out / "analysis.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    command, target = sys.argv[1], Path(sys.argv[2])
    if command == "prepare":
        prepare(target)
    elif command == "matmul":
        matmul(target)
    elif command == "analyse":
        sys.exit(
            analyse(
                target,
                Path(sys.argv[3]),
                Path(sys.argv[4]),
                Path(sys.argv[5]),
                Path(sys.argv[6]),
                int(sys.argv[7]),
            )
        )
    else:
        sys.exit(f"unknown command {command}")
