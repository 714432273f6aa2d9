"""Shared setup of the reward-model benchmark: models with identical weights, pre-tokenized toy data,
FLOP accounting (docs/design/training_anchors.md §4.2) and the matmul ceiling."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hidden: int
    layers: int
    heads: int


SPECS = {
    "tiny": ModelSpec("tiny", hidden=128, layers=2, heads=4),  # ~0.5M non-embedding parameters
    "10m": ModelSpec("10m", hidden=256, layers=10, heads=4),  # ~10.5M non-embedding parameters
}


def build_world(root: Path, pairs: int) -> Path:
    from training.toyworld import WorldConfig, generate_world

    data = root / "data"
    if not (data / "pairs_train.jsonl").exists():
        generate_world(data, WorldConfig(pairs=pairs, test_pairs=10, sft=2000, noise=0.1, seed=0))
    return data


def build_models(root: Path, data: Path, spec: ModelSpec) -> dict[str, Path]:
    """One random LM -> our score model and an HF LlamaForSequenceClassification, same weights.

    Our head has a bias (zero, and with eta = 0 it never receives a gradient: the pairwise loss is
    invariant to a shared offset), HF's has none; the weights are copied exactly.
    """
    from transformers import LlamaForSequenceClassification

    from training.config import InitTinyConfig
    from training.models import load_score_model, save_score_model
    from training.models.tiny import run_init_tiny

    paths = {k: root / f"{spec.name}_{k}" for k in ("lm", "ours", "trl")}
    if (paths["trl"] / "config.json").exists():
        return paths
    run_init_tiny(
        InitTinyConfig(
            out=str(paths["lm"]),
            corpus=str(data / "sft.jsonl"),
            hidden=spec.hidden,
            layers=spec.layers,
            heads=spec.heads,
        )
    )
    torch.manual_seed(1234)
    ours = load_score_model(paths["lm"])
    save_score_model(ours, paths["ours"])
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(paths["lm"]).save_pretrained(paths["ours"])
    hf = LlamaForSequenceClassification.from_pretrained(paths["lm"], num_labels=1, dtype=torch.float32)
    hf.model.load_state_dict(ours.backbone.state_dict())
    with torch.no_grad():
        hf.score.weight.copy_(ours.score_head.weight)
    hf.config.pad_token_id = ours.config.pad_token_id
    hf.save_pretrained(paths["trl"])
    AutoTokenizer.from_pretrained(paths["lm"]).save_pretrained(paths["trl"])
    return paths


def pretokenize(model_dir: Path, data: Path, out: Path) -> Path:
    """Our PreferenceDataset's token ids (BOS + template + answer + EOS), written for TRL to use as is."""
    from training.data import PreferenceDataset
    from training.models import load_tokenizer

    if out.exists():
        return out
    ds = PreferenceDataset(str(data / "pairs_train.jsonl"), load_tokenizer(str(model_dir)), 512)
    rows = [
        {"chosen_ids": ds[i]["better_input_ids"].tolist(), "rejected_ids": ds[i]["worse_input_ids"].tolist()}
        for i in range(len(ds))
    ]
    out.write_text(json.dumps(rows))
    return out


def model_flops_per_sequence(config_path: Path, length: int) -> float:
    """Training FLOPs of one scalar-head sequence of ``length`` real tokens (§4.2, §4.3):
    3 x [2 (N_dense + d) s + 2 L h_q d_h s^2]."""
    cfg = json.loads(config_path.read_text())
    d, layers, f = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    h_q, h_kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    d_h = cfg.get("head_dim") or d // h_q
    n_dense = layers * (d * (h_q * d_h + 2 * h_kv * d_h) + h_q * d_h * d + 3 * d * f)
    forward = 2 * (n_dense + d) * length + 2 * layers * h_q * d_h * length**2
    return 3.0 * forward


def shared_pair_flops(config_path: Path, first: int, second: int, prefix: int) -> float:
    """Training FLOPs executed for one pair in the shared-prompt layout, where the ``prefix`` tokens
    the two sequences share are computed once: F(first) + F(second) - F(prefix).

    Exact under §4.2's convention: the dense term counts first + second - prefix tokens, and the
    causal attention term counts the (query, key) pairs the block mask lets through, i.e. each
    response over prefix + itself, with the prefix-over-prefix block once.
    """
    return (
        model_flops_per_sequence(config_path, first)
        + model_flops_per_sequence(config_path, second)
        - model_flops_per_sequence(config_path, prefix)
    )


def non_embedding_parameters(config_path: Path) -> int:
    cfg = json.loads(config_path.read_text())
    d, layers, f, h = (
        cfg["hidden_size"],
        cfg["num_hidden_layers"],
        cfg["intermediate_size"],
        cfg["num_attention_heads"],
    )
    h_kv = cfg.get("num_key_value_heads") or h
    d_h = d // h
    return layers * (d * (h * d_h + 2 * h_kv * d_h) + h * d_h * d + 3 * d * f + 2 * d) + d


def peak_matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of an n x n fp32 torch.mm in this process (the machine's matmul ceiling)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best
