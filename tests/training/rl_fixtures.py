"""Fixtures of the policy-stage tests: micro score models, prompt files and a toy-world cost model.

Import the fixtures into a test module (``from tests.training.rl_fixtures import ...``); they build
on the session fixtures of ``tests/training/conftest.py`` (toy world, micro and SFT models).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from training.config import CostModelConfig
from training.models import load_score_model, load_tokenizer, save_score_model


def save_micro_score_model(lm_dir: Path, out: Path, seed: int, bias: float = 0.0) -> Path:
    """A score model from an LM directory with a seeded head, saved like the reward/cost stages do."""
    torch.manual_seed(seed)
    model = load_score_model(lm_dir)
    with torch.no_grad():
        model.score_head.weight.normal_(0.0, 0.5)
        model.score_head.bias.fill_(bias)
    save_score_model(model, out)
    load_tokenizer(str(lm_dir)).save_pretrained(out)
    return out


def write_prompts(toy_world: Path, out: Path, split: str, limit: int | None = None) -> Path:
    rows = [json.loads(line) for line in (toy_world / "prompts.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["split"] == split]
    if limit is not None:  # spread over the topics (the file is ordered by topic)
        rows = rows[:: max(1, len(rows) // limit)][:limit]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test's training single-threaded and restore the thread count afterwards: on a
    shared, busy machine two spinning OpenMP threads slow a run down by an order of magnitude."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def head(source: Path, out: Path, rows: int) -> Path:
    out.write_text("".join(source.read_text().splitlines(keepends=True)[:rows]))
    return out


@pytest.fixture(scope="session")
def micro_rl(micro_model: Path, toy_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Paths for mechanics tests: the micro LM as actor, and micro reward and cost models."""
    root = tmp_path_factory.mktemp("micro_rl")
    return {
        "actor": micro_model,
        "rm": save_micro_score_model(micro_model, root / "rm", seed=1),
        "cm": save_micro_score_model(micro_model, root / "cm", seed=2, bias=0.1),
        "train": write_prompts(toy_world, root / "prompts_train.jsonl", "train"),
        "eval": write_prompts(toy_world, root / "prompts_eval.jsonl", "eval", limit=24),
        "sft_rows": toy_world / "sft.jsonl",
        "pairs": head(toy_world / "pairs_train.jsonl", root / "pairs_train.jsonl", 400),
        "pairs_test": head(toy_world / "pairs_test.jsonl", root / "pairs_test.jsonl", 200),
    }


@pytest.fixture(scope="session")
def toy_cost_model(sft_model: Path, toy_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cost model trained for one epoch on 2000 noisy toy-world pairs (cost > 0: unsafe)."""
    from training.algorithms.cost_model import run_cost

    out = tmp_path_factory.mktemp("toy_cm")
    pairs = head(toy_world / "pairs_train.jsonl", out.parent / f"{out.name}_pairs.jsonl", 2000)
    run_cost(
        CostModelConfig(
            model_name_or_path=str(sft_model),
            train_data=str(pairs),
            output_dir=str(out),
            epochs=1,
            learning_rate=1e-3,
            per_device_train_batch_size=32,
            max_length=128,
            logging_steps=50,
            save_steps=10_000,
        )
    )
    return out
