"""Write a toy-world dataset: SFT corpus, prompt pool and PKU-SafeRLHF-style preference pairs."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from training.toyworld.annotators import AnnotatorPool, PairLabels, true_labels
from training.toyworld.grammar import ToyPrompt, all_prompts
from training.toyworld.judges import judge_harm, judge_helpfulness
from training.toyworld.styles import sample_response

logger = logging.getLogger(__name__)
SOURCE = "toyworld"


@dataclass(frozen=True)
class WorldConfig:
    pairs: int = 4000  # noisy training pairs
    test_pairs: int = 1000  # held-out pairs with the judges' true labels
    sft: int = 4000  # supervised (prompt, response) rows
    noise: float = 0.1  # per-axis preference flip probability of each annotator
    safety_error: float = 0.02  # per-response safety-label flip probability
    position_bias: float = 0.02  # probability of picking the first-shown response
    spammer_share: float = 0.0  # share of annotators answering at random
    annotators: int = 20
    eval_fraction: float = 0.25  # share of each topic's prompts held out (test pairs, RL eval)
    seed: int = 0


def split_prompts(prompts: list[ToyPrompt], eval_fraction: float, rng: random.Random) -> dict[str, str]:
    """Stratified split by topic, so every topic (risky ones included) has held-out prompts."""
    split: dict[str, str] = {}
    by_topic: dict[str, list[ToyPrompt]] = {}
    for prompt in prompts:
        by_topic.setdefault(prompt.topic.name, []).append(prompt)
    for group in by_topic.values():
        order = rng.sample(group, len(group))
        n_eval = max(1, round(eval_fraction * len(group)))
        split.update({p.text: ("eval" if i < n_eval else "train") for i, p in enumerate(order)})
    return split


def prompt_record(prompt: ToyPrompt, split: str) -> dict[str, Any]:
    return {
        "prompt": prompt.text,
        "topic": prompt.topic.name,
        "risky": prompt.topic.risky,
        "harm_category": prompt.topic.harm_category,
        "red_team": prompt.red_team,
        "split": split,
    }


def sample_pair(rng: random.Random, prompt: ToyPrompt) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two responses with different text and different true helpfulness (no helpfulness ties)."""
    while True:
        a, b = sample_response(rng, prompt.topic), sample_response(rng, prompt.topic)
        if a[1] != b[1] and judge_helpfulness(prompt.text, a[1]) != judge_helpfulness(prompt.text, b[1]):
            return a, b


def pair_record(
    prompt: ToyPrompt, a: tuple[str, str], b: tuple[str, str], labels: PairLabels
) -> dict[str, Any]:
    """One PKU-SafeRLHF row (v0 fields plus v1's sources, harm-category dicts and severities)."""
    return {
        "prompt": prompt.text,
        "response_0": a[1],
        "response_1": b[1],
        **labels.as_record_fields(),
        "prompt_source": SOURCE,
        "response_0_source": f"{SOURCE}:{a[0]}",
        "response_1_source": f"{SOURCE}:{b[0]}",
    }


def _truth_fields(prompt: ToyPrompt, a: str, b: str) -> dict[str, float]:
    return {
        "response_0_helpfulness": judge_helpfulness(prompt.text, a),
        "response_1_helpfulness": judge_helpfulness(prompt.text, b),
        "response_0_cost": judge_harm(prompt.text, a).cost,
        "response_1_cost": judge_harm(prompt.text, b).cost,
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=False) + "\n")


def _sft_rows(rng: random.Random, prompts: list[ToyPrompt], n: int) -> list[dict[str, Any]]:
    rows = []
    for _ in range(n):
        prompt = rng.choice(prompts)
        style, response = sample_response(rng, prompt.topic)
        rows.append(
            {
                "prompt": prompt.text,
                "response": response,
                "topic": prompt.topic.name,
                "risky": prompt.topic.risky,
                "style": style,
            }
        )
    return rows


def _pair_rows(
    rng: random.Random, prompts: list[ToyPrompt], n: int, pool: AnnotatorPool | None
) -> list[dict[str, Any]]:
    rows = []
    for _ in range(n):
        prompt = rng.choice(prompts)
        a, b = sample_pair(rng, prompt)
        if pool is None:
            row = pair_record(prompt, a, b, true_labels(prompt.text, a[1], b[1], rng))
            row.update(_truth_fields(prompt, a[1], b[1]))
        else:
            row = pair_record(prompt, a, b, pool.label(prompt.text, a[1], b[1]))
        rows.append(row)
    return rows


def world_stats(sft_rows: list[dict[str, Any]]) -> dict[str, float]:
    """Ground-truth statistics of the SFT corpus (what an SFT policy will roughly imitate)."""
    risky = [r for r in sft_rows if r["risky"]]
    verdicts = [judge_harm(r["prompt"], r["response"]) for r in risky]
    helps = [judge_helpfulness(r["prompt"], r["response"]) for r in risky]
    safe_helpful = sum(v.is_safe and h >= 1.0 for v, h in zip(verdicts, helps, strict=True))
    return {
        "sft_risky_unsafe_rate": sum(not v.is_safe for v in verdicts) / max(1, len(risky)),
        "sft_risky_safe_helpful_rate": safe_helpful / max(1, len(risky)),
        "sft_mean_helpfulness": sum(judge_helpfulness(r["prompt"], r["response"]) for r in sft_rows)
        / max(1, len(sft_rows)),
    }


def generate_world(out_dir: str | Path, config: WorldConfig) -> dict[str, Any]:
    """Write sft.jsonl, prompts.jsonl, pairs_train.jsonl, pairs_test.jsonl and world.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)
    normal, red_team = all_prompts(), all_prompts(red_team=True)
    split = split_prompts(normal, config.eval_fraction, rng)
    train_prompts = [p for p in normal if split[p.text] == "train"]
    eval_prompts = [p for p in normal if split[p.text] == "eval"]
    pool = AnnotatorPool(
        config.annotators,
        noise=config.noise,
        position_bias=config.position_bias,
        safety_error=config.safety_error,
        spammer_share=config.spammer_share,
        seed=config.seed,
    )
    prompt_rows = [prompt_record(p, split[p.text]) for p in normal]
    prompt_rows += [prompt_record(p, "red_team") for p in red_team]
    sft_rows = _sft_rows(rng, train_prompts, config.sft)
    train_rows = _pair_rows(rng, train_prompts, config.pairs, pool)
    test_rows = _pair_rows(rng, eval_prompts, config.test_pairs, None)
    for name, rows in (
        ("sft", sft_rows),
        ("prompts", prompt_rows),
        ("pairs_train", train_rows),
        ("pairs_test", test_rows),
    ):
        _write_jsonl(out / f"{name}.jsonl", rows)
    manifest = {
        "config": asdict(config),
        "counts": {
            "sft": len(sft_rows),
            "prompts": len(prompt_rows),
            "pairs_train": len(train_rows),
            "pairs_test": len(test_rows),
        },
        "stats": world_stats(sft_rows),
    }
    (out / "world.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("toy world written to %s: %s", out, manifest["counts"])
    return manifest
