"""Losses and metrics of docs/design/method.md §3 and §4, as pure functions on score tensors.

Sign convention (project-wide): cost > 0 means unsafe. The *safety sign* of a response is +1 if
safe and -1 if unsafe; the *cost sign* is its negative (§3.2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.data.datasets import IGNORE_INDEX


def cost_sign(is_safe: torch.Tensor) -> torch.Tensor:
    """(N,) bool -> (N,) float: -1 for safe, +1 for unsafe."""
    return 1.0 - 2.0 * is_safe.float()


def reward_loss(better: torch.Tensor, worse: torch.Tensor, regularization: float = 0.0) -> torch.Tensor:
    """Sequence-wise reward loss (§3.1): -mean logsig(r_w - r_l) + eta * mean over the 2B scores of r^2.

    ``better``, ``worse``: (B,) end scores.
    """
    ranking = -F.logsigmoid(better - worse).mean()
    l2 = torch.cat([better, worse]).square().mean()
    return ranking + regularization * l2


def cost_loss(
    safer: torch.Tensor,
    unsafer: torch.Tensor,
    is_safer_safe: torch.Tensor,
    is_unsafer_safe: torch.Tensor,
    regularization: float = 0.0,
) -> torch.Tensor:
    """Sequence-wise cost loss (§3.2), per pair b with end costs c_s (safer) and c_u (less safe):

    L_C = mean_b[-logsig(c_u - c_s) - logsig(cs_s * c_s) - logsig(cs_u * c_u)] + eta * mean(c^2)

    The first term ranks by harmfulness; the sign terms are a Bradley-Terry comparison against a
    virtual response of cost 0 (paper eq. for L_C), pushing unsafe costs above 0 and safe below.
    ``safer``, ``unsafer``: (B,) end costs; ``is_*_safe``: (B,) bool safety labels.
    """
    ranking = -F.logsigmoid(unsafer - safer)
    sign_safer = -F.logsigmoid(cost_sign(is_safer_safe) * safer)
    sign_unsafer = -F.logsigmoid(cost_sign(is_unsafer_safe) * unsafer)
    l2 = torch.cat([safer, unsafer]).square().mean()
    return (ranking + sign_safer + sign_unsafer).mean() + regularization * l2


def diverging_span_mask(
    first_ids: torch.Tensor, second_ids: torch.Tensor, first_end: torch.Tensor, second_end: torch.Tensor
) -> torch.Tensor:
    """(B, L) mask of the token-wise slice [d, e]: d = first index where the two sequences differ,
    e = max(end_1, end_2) (§3.1). Like upstream, the slice may cover the shorter one's padding."""
    positions = torch.arange(first_ids.shape[1], device=first_ids.device)  # (L,)
    differs = first_ids != second_ids  # (B, L)
    d = torch.where(differs.any(dim=1), differs.float().argmax(dim=1), torch.zeros_like(first_end))  # (B,)
    e = torch.maximum(first_end, second_end)  # (B,)
    return (positions >= d[:, None]) & (positions <= e[:, None])


def _span_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, L) ``values`` over each row's mask -> (B,)."""
    mask = mask.float()
    return (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def token_wise_reward_loss(
    better_scores: torch.Tensor, worse_scores: torch.Tensor, span: torch.Tensor, regularization: float = 0.0
) -> torch.Tensor:
    """Token-wise reward loss (§3.1). ``*_scores``: (B, L) per-token scores; ``span``: (B, L) bool."""
    ranking = _span_mean(-F.logsigmoid(better_scores - worse_scores), span)
    l2 = 0.5 * (_span_mean(better_scores.square(), span) + _span_mean(worse_scores.square(), span))
    return (ranking + regularization * l2).mean()


def token_wise_cost_loss(
    safer_scores: torch.Tensor,
    unsafer_scores: torch.Tensor,
    is_safer_safe: torch.Tensor,
    is_unsafer_safe: torch.Tensor,
    span: torch.Tensor,
    regularization: float = 0.0,
) -> torch.Tensor:
    """Token-wise cost loss (§3.2): the three terms of ``cost_loss``, each averaged over the span."""
    ranking = _span_mean(-F.logsigmoid(unsafer_scores - safer_scores), span)
    sign_s = _span_mean(-F.logsigmoid(cost_sign(is_safer_safe)[:, None] * safer_scores), span)
    sign_u = _span_mean(-F.logsigmoid(cost_sign(is_unsafer_safe)[:, None] * unsafer_scores), span)
    l2 = 0.5 * (_span_mean(safer_scores.square(), span) + _span_mean(unsafer_scores.square(), span))
    return (ranking + sign_s + sign_u + regularization * l2).mean()


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over labelled positions (§4: answer tokens and the EOS).

    ``logits``: (B, L, V); ``labels``: (B, L) with IGNORE_INDEX on prompt and padding tokens.
    """
    shift_logits = logits[:, :-1].float()  # (B, L-1, V)
    shift_labels = labels[:, 1:]  # (B, L-1)
    return F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=IGNORE_INDEX
    )


def pairwise_accuracy(preferred: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs with preferred > other (reward: r_w > r_l; cost: c_u > c_s)."""
    return (preferred > other).float().mean()


def sign_accuracy(costs: torch.Tensor, is_safe: torch.Tensor) -> torch.Tensor:
    """Fraction of responses whose cost sign is right: c < 0 if safe, c > 0 if unsafe (§3.2)."""
    return torch.where(is_safe, costs < 0, costs > 0).float().mean()
