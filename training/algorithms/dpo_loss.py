"""DPO on helpfulness preferences (docs/design/method.md §7.4), summing the right token range.

For a response whose tokens differ from the other response's from index d on and end at index e
(the last attended token), the log-probability of its tokens x_d..x_e sits in entries d-1..e-1 of
the shifted log-prob array (entry t is log π(x_{t+1} | x_{≤t})). The reference sums entries
[d, e] instead, dropping the first differing token and adding one padding position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def response_log_prob_sum(
    token_log_probs: torch.Tensor, first: torch.Tensor, end: torch.Tensor
) -> torch.Tensor:
    """Sum of log π over tokens first..end of each row.

    token_log_probs: (B, T) shifted per-token log-probs (T = L - 1); first, end: (B,) token indices
    in the unshifted sequence, 1 ≤ first ≤ end. Sums entries first-1 .. end-1. Returns (B,).
    """
    positions = torch.arange(token_log_probs.shape[1], device=token_log_probs.device)  # (T,)
    in_range = (positions >= (first - 1).unsqueeze(1)) & (positions <= (end - 1).unsqueeze(1))  # (B, T)
    return (token_log_probs * in_range).sum(dim=1)


def dpo_loss(
    policy_better: torch.Tensor,
    policy_worse: torch.Tensor,
    reference_better: torch.Tensor,
    reference_worse: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-log σ(β·(Δ_w - Δ_l)) with Δ = Σ(log π - log π_ref). Inputs (B,). Returns the mean loss
    and the implicit rewards β·Δ_w and β·Δ_l, each (B,)."""
    better_reward = beta * (policy_better - reference_better)
    worse_reward = beta * (policy_worse - reference_worse)
    loss = -F.logsigmoid(better_reward - worse_reward).mean()
    return loss, better_reward.detach(), worse_reward.detach()
