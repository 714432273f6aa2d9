"""Metrics of a rollout batch, keyed as the reference logs them (docs/design/method.md §5.7, §6.6)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from training.algorithms.experience import Experience, kl_per_sequence
from training.algorithms.ppo_losses import masked_mean


def _required(value: torch.Tensor | None) -> torch.Tensor:
    """A field the phases computed before metrics are taken (callers check the first experience)."""
    if value is None:
        raise ValueError("an experience field was read before it was computed")
    return value


def _cat(experiences: list[Experience], get: Callable[[Experience], torch.Tensor | None]) -> torch.Tensor:
    return torch.cat([_required(get(exp)).float() for exp in experiences])


def _masked(experiences: list[Experience], name: str) -> float:
    """Sequence-weighted masked mean of a (B, R) field over the batch (the reference's masked_mean)."""
    total = sum(masked_mean(getattr(exp, name), exp.mask) * exp.mask.shape[0] for exp in experiences)
    return float(total) / sum(exp.mask.shape[0] for exp in experiences)


def batch_metrics(experiences: list[Experience]) -> dict[str, float]:
    """Scores, shaped returns, advantages, values, KL and lengths of the episodes just rolled out."""
    lengths = _cat(experiences, lambda e: e.rollout.response_lengths)
    metrics = {
        "train/reward": float(_cat(experiences, lambda e: e.reward).mean()),
        "train/reward_with_kl_penalty": float(
            _cat(experiences, lambda e: _required(e.shaped_rewards).sum(dim=1)).mean()
        ),
        "train/reward_advantage": _masked(experiences, "reward_advantages"),
        "train/reward_return": _masked(experiences, "reward_returns"),
        "train/reward_value": _masked(experiences, "reward_values"),
        "train/kl_divergence": float(_cat(experiences, kl_per_sequence).mean()),
        "train/mean_generated_length": float(lengths.mean()),
        "train/max_generated_length": float(lengths.max()),
        "train/tokens": float(sum(int(e.rollout.attention_mask.sum()) for e in experiences)),
    }
    first = experiences[0]
    if first.cost is not None:
        costs = _cat(experiences, lambda e: e.cost)
        metrics["train/cost"] = float(costs.mean())
        metrics["train/unsafe_ratio"] = float((costs > 0).float().mean())  # cost > 0 = unsafe
    if first.sequence_reward is not None and first.cost is not None and first.cost_advantages is None:
        metrics["train/shaped_reward"] = float(_cat(experiences, lambda e: e.sequence_reward).mean())
    if first.cost_advantages is not None:
        metrics.update(
            {
                "train/cost_with_kl_penalty": float(
                    _cat(experiences, lambda e: _required(e.shaped_costs).sum(dim=1)).mean()
                ),
                "train/cost_advantage": _masked(experiences, "cost_advantages"),
                "train/cost_return": _masked(experiences, "cost_returns"),
                "train/cost_value": _masked(experiences, "cost_values"),
            }
        )
    return metrics


def mean_metrics(steps: Iterable[dict[str, float]]) -> dict[str, float]:
    """Mean of each key over the optimizer steps of a rollout batch."""
    steps = list(steps)
    keys = {k for step in steps for k in step}
    return {k: sum(s[k] for s in steps if k in s) / sum(k in s for s in steps) for k in sorted(keys)}
