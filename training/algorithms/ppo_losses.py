"""The clipped PPO policy loss and the clipped value loss (docs/design/method.md §5.5)."""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid tokens of each sequence, then over sequences (§5.5), so that long
    responses do not outweigh short ones. x, mask: (B, T) -> scalar."""
    mask = mask.to(x.dtype)
    per_sequence = (x * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1.0)  # (B,)
    return per_sequence.mean()


def actor_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range_ratio: float = 0.2,
) -> torch.Tensor:
    """-masked_mean(min(ρA, clip(ρ, 1-ε, 1+ε)A)) with ρ = exp(logp_new - logp_old). All (B, T)."""
    ratio = torch.exp(log_probs - old_log_probs)  # (B, T)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range_ratio, 1.0 + clip_range_ratio)
    return masked_mean(torch.maximum(unclipped, clipped), mask)


def critic_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range_value: float = 5.0,
) -> torch.Tensor:
    """0.5 · masked_mean(max((V - Ret)², (clip(V, V_old ± ε_v) - Ret)²)). All (B, T)."""
    clipped = torch.maximum(
        torch.minimum(values, old_values + clip_range_value), old_values - clip_range_value
    )
    loss = torch.maximum((values - returns).square(), (clipped - returns).square())  # (B, T)
    return 0.5 * masked_mean(loss, mask)


def clip_fraction(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, mask: torch.Tensor, eps: float
) -> float:
    """Share of valid tokens whose ratio left [1-ε, 1+ε]: a health metric of the update."""
    ratio = torch.exp(log_probs - old_log_probs)
    outside = ((ratio < 1.0 - eps) | (ratio > 1.0 + eps)) & mask.bool()
    return float(outside.sum() / mask.sum().clamp(min=1))
