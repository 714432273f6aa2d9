"""``python -m training generate``: sample one policy's answers to a prompt set.

Writes ``generations.jsonl`` (the prompt row's fields plus ``response``, ``length`` and, when the
models are given, ``reward`` and ``cost``; with ``ground_truth=toyworld`` also the judges'
``true_helpfulness`` and ``true_unsafe``) and ``summary.json`` with the means.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.algorithms.rl_data import PromptSource
from training.algorithms.rollout import SamplingSettings
from training.config import GenerateConfig, config_to_dict
from training.engine.lifecycle import StageRun
from training.engine.reporting import write_json_atomic, write_summary
from training.engine.rng import seed_everything
from training.engine.runtime import configure_torch, resolve_device, use_bf16
from training.evaluation.generation import Responses, sample_responses
from training.evaluation.judging import Verdicts, judge_toyworld, mean, score_metrics
from training.models import ScoreModel, load_causal_lm, load_score_model, load_tokenizer
from training.models.normalizer import ScoreType

logger = logging.getLogger(__name__)


def load_scorer(
    path: str | None, score_type: ScoreType, device: torch.device, dtype: torch.dtype
) -> ScoreModel | None:
    """A frozen reward or cost model in eval mode, or None."""
    if path is None:
        return None
    model = load_score_model(path, score_type=score_type, dtype=dtype)
    return model.to(device).eval().requires_grad_(False)


def load_prompts(cfg: Any, tokenizer: Any) -> PromptSource:
    source = PromptSource(cfg.prompt_data, tokenizer, cfg.max_prompt_length)
    if source.dropped:
        logger.info("dropped %d prompts longer than %d tokens", source.dropped, cfg.max_prompt_length)
    return source


def prompt_count(cfg: Any, source: PromptSource) -> int:
    """How many prompts a run answers: the first ``max_prompts`` (-1: all)."""
    return len(source) if cfg.max_prompts < 0 else min(cfg.max_prompts, len(source))


def answer(
    cfg: Any,
    policy_path: str,
    source: PromptSource,
    device: torch.device,
    dtype: torch.dtype,
    reward_model: ScoreModel | None,
    cost_model: ScoreModel | None,
    seed_offset: int = 0,
    on_batch: Callable[[int], None] | None = None,
    repeats: int = 1,
) -> Responses:
    """Answer the first ``max_prompts`` prompts ``repeats`` times (all of them, then all again: each
    answer a fresh sample) with the policy at ``policy_path``, sampling from seed
    ``cfg.seed + seed_offset``."""
    tokenizer = load_tokenizer(policy_path, padding_side="left", trust_remote_code=cfg.trust_remote_code)
    policy: nn.Module = load_causal_lm(policy_path, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    policy.to(device).eval()
    count = prompt_count(cfg, source)
    seed_everything(cfg.seed + seed_offset)
    settings = SamplingSettings(cfg.max_new_tokens, cfg.temperature, cfg.top_p)
    return sample_responses(
        policy,
        tokenizer,
        source,
        settings,
        cfg.per_device_eval_batch_size,
        device,
        reward_model=reward_model,
        cost_model=cost_model,
        indices=[i for _ in range(repeats) for i in range(count)],
        on_batch=on_batch,
    )


def response_rows(source: PromptSource, out: Responses, verdicts: Verdicts | None) -> list[dict[str, Any]]:
    rows = []
    for k, i in enumerate(out.indices):
        row = {
            **source.rows[i],
            "prompt": source.prompts[i],
            "response": out.texts[k],
            "length": out.lengths[k],
        }
        if out.rewards is not None:
            row["reward"] = out.rewards[k]
        if out.costs is not None:
            row["cost"] = out.costs[k]
        if verdicts is not None:
            row["true_helpfulness"] = verdicts.helpfulness[k]
            row["true_unsafe"] = verdicts.unsafe[k]
        rows.append(row)
    return rows


def run_generate(cfg: GenerateConfig) -> dict[str, float]:
    """Sample, score and write the responses; ``events.jsonl`` reports progress in prompts."""
    with StageRun.open(cfg.output_dir, "generate") as run:
        summary = _generate(cfg, run)
        run.done_message = f"generated {int(summary['data/prompts'])} responses"
    return summary


def _generate(cfg: GenerateConfig, run: StageRun) -> dict[str, float]:
    output_dir = Path(cfg.output_dir)
    device = resolve_device(cfg)
    configure_torch(cfg, device)
    dtype = torch.bfloat16 if use_bf16(cfg, device) else torch.float32
    write_json_atomic(output_dir / "run.json", config_to_dict(cfg))
    source = load_prompts(cfg, load_tokenizer(cfg.model_name_or_path, padding_side="left"))
    reward_model = load_scorer(cfg.reward_model_name_or_path, "reward", device, dtype)
    cost_model = load_scorer(cfg.cost_model_name_or_path, "cost", device, dtype)
    progress = run.counter(prompt_count(cfg, source))
    out = answer(
        cfg, cfg.model_name_or_path, source, device, dtype, reward_model, cost_model, on_batch=progress
    )
    prompts = [source.prompts[i] for i in out.indices]
    verdicts = judge_toyworld(prompts, out.texts) if cfg.ground_truth == "toyworld" else None
    rows = response_rows(source, out, verdicts)
    with (output_dir / "generations.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)
    summary = {"data/prompts": float(len(rows)), "eval/mean_generated_length": mean(out.lengths)}
    summary.update({f"eval/{k}": v for k, v in score_metrics(out.rewards, out.costs).items()})
    if verdicts is not None:
        summary.update({f"eval/{k}": v for k, v in verdicts.metrics().items()})
    write_summary(output_dir, summary)
    return summary
