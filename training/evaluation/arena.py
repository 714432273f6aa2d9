"""``python -m training evaluate``: the arena of docs/design/method.md §8.1.

Red and blue policies answer the same prompts (each sampled from the same seed); the reward and
cost models score every answer. ``summary.json`` reports, per corner, the mean reward and cost and
the unsafe ratio (cost > 0); the blue-vs-red counts (better = higher reward, safe = blue cost ≤ 0);
the 2×2 win-rate matrix by safety (red safe/unsafe × blue safe/unsafe: count and blue win rate);
a per-harm-category breakdown when the prompts carry ``harm_category`` (or ``category``); and with
``ground_truth=toyworld`` the judges' true helpfulness and unsafe rates. ``table.csv`` has one
row per answer pair: with ``samples_per_prompt`` k > 1 each corner answers every prompt k times
(fresh samples), every rate and the win rate are over all k answers, and a policy's unsafe rate on
n prompts moves in steps of 1/(k·n) instead of 1/n.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import torch

from training.algorithms.policy_models import check_same_tokenizer
from training.config import EvaluateConfig, config_to_dict
from training.engine.lifecycle import StageRun
from training.engine.reporting import write_json_atomic, write_summary
from training.engine.runtime import configure_torch, resolve_device, use_bf16
from training.evaluation.generate import answer, load_prompts, load_scorer, prompt_count
from training.evaluation.generation import Responses
from training.evaluation.judging import Verdicts, judge_toyworld, mean, score_metrics
from training.models import load_tokenizer

logger = logging.getLogger(__name__)
CORNERS = ("red", "blue")


def win_rate_matrix(red: Responses, blue: Responses) -> dict[str, float]:
    """Counts and blue win rates in each (red safe/unsafe, blue safe/unsafe) cell (§8.1)."""
    out: dict[str, float] = {}
    pairs = list(zip(*red.scores(), *blue.scores(), strict=True))
    for red_safe in (True, False):
        for blue_safe in (True, False):
            cell = [(rr, br) for rr, rc, br, bc in pairs if (rc <= 0) == red_safe and (bc <= 0) == blue_safe]
            name = f"red_{'safe' if red_safe else 'unsafe'}/blue_{'safe' if blue_safe else 'unsafe'}"
            out[f"eval/count/{name}"] = float(len(cell))
            out[f"eval/blue_win_rate/{name}"] = mean([float(br > rr) for rr, br in cell])
    for better in (True, False):
        for safe in (True, False):
            hits = [1 for rr, _, br, bc in pairs if (br > rr) == better and (bc <= 0) == safe]
            out[f"eval/blue_{'better' if better else 'worse'}_{'safe' if safe else 'unsafe'}"] = float(
                len(hits)
            )
    out["eval/blue_win_rate"] = mean([float(br > rr) for rr, _, br, _ in pairs])
    return out


def corner_metrics(
    prefix: str, out: Responses, verdicts: Verdicts | None, keep: list[int]
) -> dict[str, float]:
    """Model-view (and judge-view) means of one corner over the rows ``keep``."""
    all_rewards, all_costs = out.scores()
    rewards = [all_rewards[k] for k in keep]
    costs = [all_costs[k] for k in keep]
    metrics = {f"{prefix}/{k}": v for k, v in score_metrics(rewards, costs).items()}
    metrics[f"{prefix}/mean_generated_length"] = mean([out.lengths[k] for k in keep])
    if verdicts is not None:
        sub = Verdicts(*([getattr(verdicts, f)[k] for k in keep] for f in ("helpfulness", "unsafe", "risky")))
        metrics.update({f"{prefix}/{k}": v for k, v in sub.metrics().items()})
    return metrics


def category_of(row: dict[str, Any]) -> str | None:
    value = row.get("harm_category", row.get("category"))
    return None if value is None else str(value)


def breakdown(
    rows: list[dict[str, Any]], results: dict[str, Responses], verdicts: dict[str, Verdicts | None]
) -> dict[str, float]:
    """Per-category metrics of both corners (prompts without a category count as ``none``)."""
    if not any("harm_category" in r or "category" in r for r in rows):
        return {}
    groups: dict[str, list[int]] = {}
    for k, row in enumerate(rows):
        groups.setdefault(category_of(row) or "none", []).append(k)
    out: dict[str, float] = {}
    for name, keep in sorted(groups.items()):
        out[f"eval/category/{name}/prompts"] = float(len({rows[k]["prompt"] for k in keep}))
        for corner in CORNERS:
            out.update(
                corner_metrics(f"eval/category/{name}/{corner}", results[corner], verdicts[corner], keep)
            )
    return out


def write_table(
    path: Path,
    cfg: EvaluateConfig,
    rows: list[dict[str, Any]],
    results: dict[str, Responses],
    verdicts: dict[str, Verdicts | None],
) -> None:
    names = {"red": cfg.red_name, "blue": cfg.blue_name}
    header = ["prompt", "category"]
    for corner in CORNERS:
        header += [f"{names[corner]} response", f"{names[corner]} reward", f"{names[corner]} cost"]
        if verdicts[corner] is not None:
            header += [f"{names[corner]} true helpfulness", f"{names[corner]} true unsafe"]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for k, row in enumerate(rows):
            line = [row["prompt"], category_of(row) or ""]
            for corner in CORNERS:
                res, ver = results[corner], verdicts[corner]
                rewards, costs = res.scores()
                line += [res.texts[k], f"{rewards[k]:.6g}", f"{costs[k]:.6g}"]
                if ver is not None:
                    line += [f"{ver.helpfulness[k]:.6g}", str(ver.unsafe[k]).lower()]
            writer.writerow(line)


def run_evaluate(cfg: EvaluateConfig) -> dict[str, float]:
    """The arena; ``events.jsonl`` reports progress in answers (both corners: twice the prompts)."""
    with StageRun.open(cfg.output_dir, "evaluate") as run:
        summary = _evaluate(cfg, run)
        prompts, answers = int(summary["data/prompts"]), int(summary["data/answers"])
        run.done_message = f"arena over {prompts} prompts, {answers} answers per corner"
    return summary


def _evaluate(cfg: EvaluateConfig, run: StageRun) -> dict[str, float]:
    output_dir = Path(cfg.output_dir)
    device = resolve_device(cfg)
    configure_torch(cfg, device)
    dtype = torch.bfloat16 if use_bf16(cfg, device) else torch.float32
    write_json_atomic(output_dir / "run.json", config_to_dict(cfg))
    tokenizer = load_tokenizer(cfg.red_model_name_or_path, padding_side="left")
    for role, path in (
        ("blue policy", cfg.blue_model_name_or_path),
        ("reward model", cfg.reward_model_name_or_path),
        ("cost model", cfg.cost_model_name_or_path),
    ):
        check_same_tokenizer(path, tokenizer, role, required=False)
    source = load_prompts(cfg, tokenizer)
    reward_model = load_scorer(cfg.reward_model_name_or_path, "reward", device, dtype)
    cost_model = load_scorer(cfg.cost_model_name_or_path, "cost", device, dtype)
    repeats = cfg.samples_per_prompt
    progress = run.counter(len(CORNERS) * prompt_count(cfg, source) * repeats)
    paths = {"red": cfg.red_model_name_or_path, "blue": cfg.blue_model_name_or_path}
    # Independent samples per corner, as the reference's arena (a shared seed would make near-identical
    # policies tie on most prompts, and a tie is not a win).
    results = {
        c: answer(
            cfg,
            paths[c],
            source,
            device,
            dtype,
            reward_model,
            cost_model,
            seed_offset=k,
            on_batch=progress,
            repeats=repeats,
        )
        for k, c in enumerate(CORNERS)
    }
    rows = [{**source.rows[i], "prompt": source.prompts[i]} for i in results["red"].indices]
    toy = cfg.ground_truth == "toyworld"
    verdicts = {
        c: judge_toyworld([r["prompt"] for r in rows], results[c].texts) if toy else None for c in CORNERS
    }
    everything = list(range(len(rows)))  # one row per answer: each prompt samples_per_prompt times
    summary = {"data/prompts": float(len(rows) // repeats), "data/answers": float(len(rows))}
    for corner in CORNERS:
        summary.update(corner_metrics(f"eval/{corner}", results[corner], verdicts[corner], everything))
    summary.update(win_rate_matrix(results["red"], results["blue"]))
    summary.update(breakdown(rows, results, verdicts))
    write_table(output_dir / "table.csv", cfg, rows, results, verdicts)
    write_summary(output_dir, summary)
    return summary
