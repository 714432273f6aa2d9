"""DPO's log-prob range (docs/design/method.md §7.4) through the real pipeline, and the generate and
evaluate (arena, §8.1) stages with the toy world's ground truth."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from tests.training.rl_fixtures import micro_rl
from training.algorithms.dpo import DPOTask, run_dpo
from training.config import DPOConfig, EvaluateConfig, GenerateConfig, build_config
from training.data import PreferenceCollator, PreferenceDataset
from training.evaluation.arena import run_evaluate
from training.evaluation.generate import run_generate
from training.models import load_causal_lm

FIXTURES = (micro_rl,)


def _manual_sum(model: torch.nn.Module, ids: list[int], first: int, last: int) -> float:
    """Σ_{t=first..last} log π(x_t | x_<t), one unpadded sequence, token by token."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    return sum(torch.log_softmax(logits[t - 1], -1)[ids[t]].item() for t in range(first, last + 1))


def test_dpo_sums_the_log_probs_of_every_response_token_from_the_first_difference(
    micro_rl: dict, tmp_path: Path
) -> None:
    cfg = build_config(
        DPOConfig,
        {
            "model_name_or_path": str(micro_rl["actor"]),
            "train_data": str(micro_rl["pairs"]),
            "output_dir": str(tmp_path),
            "max_length": 96,
        },
    )
    task = DPOTask(cfg)
    task.setup()
    model = task.build_model().eval()
    dataset: PreferenceDataset = task.train_dataset
    items = [dataset[i] for i in range(6)]
    batch = PreferenceCollator(task.tokenizer.pad_token_id)(items)
    policy, reference = task._pair_sums(model, batch)
    assert torch.allclose(policy, reference)  # both start from the same weights
    for i, item in enumerate(items):
        better, worse = item["better_input_ids"].tolist(), item["worse_input_ids"].tolist()
        d = next(t for t in range(min(len(better), len(worse))) if better[t] != worse[t])
        assert policy[i].item() == pytest.approx(_manual_sum(model, better, d, len(better) - 1), abs=1e-4)
        assert policy[i + 6].item() == pytest.approx(_manual_sum(model, worse, d, len(worse) - 1), abs=1e-4)


def test_a_short_dpo_run_writes_its_metrics_and_moves_the_policy(micro_rl: dict, tmp_path: Path) -> None:
    summary = run_dpo(
        build_config(
            DPOConfig,
            {
                "model_name_or_path": str(micro_rl["actor"]),
                "train_data": str(micro_rl["pairs"]),
                "eval_data": str(micro_rl["pairs_test"]),
                "output_dir": str(tmp_path),
                "max_steps": 6,
                "per_device_train_batch_size": 8,
                "per_device_eval_batch_size": 64,
                "learning_rate": 1e-3,
                "max_length": 96,
                "logging_steps": 2,
            },
        )
    )
    for key in (
        "train/loss",
        "train/reward_accuracy",
        "train/reward_margin",
        "train/better_sample_reward",
        "train/worse_sample_reward",
        "eval/loss",
        "eval/reward_accuracy",
        "eval/reward_margin",
    ):
        assert key in summary, key
    assert summary["eval/reward_margin"] != 0.0
    before, after = load_causal_lm(micro_rl["actor"]), load_causal_lm(tmp_path)
    assert any(not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True))


def _sampling(micro_rl: dict, out: Path) -> dict:
    return {
        "prompt_data": str(micro_rl["eval"]),
        "output_dir": str(out),
        "max_new_tokens": 10,
        "max_prompt_length": 40,
        "reward_model_name_or_path": str(micro_rl["rm"]),
        "cost_model_name_or_path": str(micro_rl["cm"]),
        "ground_truth": "toyworld",
        "device": "cpu",
    }


def test_generate_writes_scored_and_judged_responses(micro_rl: dict, tmp_path: Path) -> None:
    summary = run_generate(
        build_config(
            GenerateConfig, {**_sampling(micro_rl, tmp_path), "model_name_or_path": str(micro_rl["actor"])}
        )
    )
    rows = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == summary["data/prompts"] == 24
    assert {"prompt", "response", "reward", "cost", "true_helpfulness", "true_unsafe", "topic"} <= set(
        rows[0]
    )
    assert summary["eval/unsafe_ratio"] == pytest.approx(sum(r["cost"] > 0 for r in rows) / len(rows))
    assert summary["eval/true_unsafe_ratio"] == pytest.approx(sum(r["true_unsafe"] for r in rows) / len(rows))


def test_arena_reports_win_rates_by_safety_per_category_and_the_judges_truth(
    micro_rl: dict, tmp_path: Path
) -> None:
    summary = run_evaluate(
        build_config(
            EvaluateConfig,
            {
                **_sampling(micro_rl, tmp_path),
                "red_model_name_or_path": str(micro_rl["actor"]),
                "blue_model_name_or_path": str(micro_rl["actor"]),
                "red_name": "sft",
                "blue_name": "beaver",
            },
        )
    )
    n = summary["data/prompts"]
    cells = [summary[f"eval/count/red_{r}/blue_{b}"] for r in ("safe", "unsafe") for b in ("safe", "unsafe")]
    assert sum(cells) == n
    outcomes = [summary[f"eval/blue_{w}_{s}"] for w in ("better", "worse") for s in ("safe", "unsafe")]
    assert sum(outcomes) == n
    assert summary["eval/count/red_safe/blue_safe"] + summary[
        "eval/count/red_unsafe/blue_safe"
    ] == pytest.approx(n * (1 - summary["eval/blue/unsafe_ratio"]))
    for corner in ("red", "blue"):
        for key in ("reward", "cost", "unsafe_ratio", "true_helpfulness", "true_unsafe_ratio_risky"):
            assert f"eval/{corner}/{key}" in summary
    categories = {k.split("/")[2] for k in summary if k.startswith("eval/category/")}
    assert "none" in categories and len(categories) >= 2  # benign prompts plus risky categories
    with (tmp_path / "table.csv").open() as fh:
        table = list(csv.reader(fh))
    assert len(table) == n + 1
    assert table[0][:5] == ["prompt", "category", "sft response", "sft reward", "sft cost"]
    assert "beaver true unsafe" in table[0]


def test_arena_with_several_samples_per_prompt_judges_every_answer(micro_rl: dict, tmp_path: Path) -> None:
    """samples_per_prompt = 3: each corner answers every prompt three times, each answer a fresh
    sample; the rates and the win rate count every answer."""
    summary = run_evaluate(
        build_config(
            EvaluateConfig,
            {
                **_sampling(micro_rl, tmp_path),
                "red_model_name_or_path": str(micro_rl["actor"]),
                "blue_model_name_or_path": str(micro_rl["actor"]),
                "samples_per_prompt": 3,
            },
        )
    )
    n, answers = summary["data/prompts"], summary["data/answers"]
    assert answers == 3 * n
    cells = [summary[f"eval/count/red_{r}/blue_{b}"] for r in ("safe", "unsafe") for b in ("safe", "unsafe")]
    assert sum(cells) == answers
    with (tmp_path / "table.csv").open() as fh:
        table = list(csv.reader(fh))[1:]
    assert len(table) == answers
    by_prompt: dict[str, set[str]] = {}
    for row in table:
        by_prompt.setdefault(row[0], set()).add(row[2])
    assert len(by_prompt) == n
    # Fresh samples: at a temperature of 1 some prompt gets different answers across its three.
    assert any(len(texts) > 1 for texts in by_prompt.values())
    categories = [k for k in summary if k.startswith("eval/category/") and k.endswith("/prompts")]
    assert sum(summary[k] for k in categories) == n
