"""Per-token rewards and costs with the KL penalty, GAE, and the Safe RLHF mixed advantage.

docs/design/method.md §5.3–5.4 and §6.4. Positions are those of the *shifted* log-prob arrays:
entry t holds log π(x_{t+1} | x_{≤t}), so a sequence of length L gives L-1 entries, and with a
(left-padded) prompt of S tokens the first action is at t = start = S - 1.
"""

from __future__ import annotations

import torch


def end_positions(sequence_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool -> (B,) long: the last t with mask 1, i.e. the position that produced the final
    kept token (the EOS when the response ended, else the last generated token)."""
    positions = torch.arange(sequence_mask.shape[1], device=sequence_mask.device)  # (T,)
    return torch.where(sequence_mask, positions, -1).max(dim=1).values  # (B,)


def kl_shaped_scores(
    score: torch.Tensor,
    log_probs: torch.Tensor,
    ref_log_probs: torch.Tensor,
    sequence_mask: torch.Tensor,
    kl_coeff: float,
    clip_range_score: float,
    kl_sign: float = -1.0,
) -> torch.Tensor:
    """Per-token shaped score (§5.3, §6.4):

        r_t = kl_sign · β · (logp_old[t] - ref_logp[t]) + 1[t = end] · score

    then clipped to ±clip_range_score. For rewards kl_sign = -1 (the KL is a penalty); for costs
    kl_sign = +1 (c_t = +β·kl_t + 1[t=end]·C), so that (A^R - λA^C)/(1+λ) keeps an effective KL
    coefficient of β whatever λ is. The score is added exactly once, at the last kept action.

    score: (B,); log_probs, ref_log_probs: (B, T); sequence_mask: (B, T) bool. Returns (B, T),
    zero outside the mask.
    """
    kl = log_probs - ref_log_probs  # (B, T)
    shaped = kl_sign * kl_coeff * kl  # (B, T)
    end = end_positions(sequence_mask)  # (B,)
    shaped = shaped.scatter_add(1, end.clamp(min=0).unsqueeze(1), score.to(shaped.dtype).unsqueeze(1))
    shaped = shaped.clamp(min=-clip_range_score, max=clip_range_score)
    return shaped * sequence_mask  # (B, T)


def gae(
    values: torch.Tensor,
    rewards: torch.Tensor,
    sequence_mask: torch.Tensor,
    start: int,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over actions t ≥ start (§5.4; γ = 1 and λ = 0.95 are the
    reference's hard-coded values). Values and rewards are zeroed outside the mask and V_{T} := 0.

    values, rewards: (B, T); sequence_mask: (B, T). Returns advantages and returns, each
    (B, T - start), not normalised.
    """
    mask = sequence_mask.to(values.dtype)
    values = values * mask  # (B, T)
    rewards = rewards * mask  # (B, T)
    length = rewards.shape[1]
    last = torch.zeros_like(values[:, 0])  # (B,)
    reversed_advantages = []
    for t in reversed(range(start, length)):
        next_value = values[:, t + 1] if t < length - 1 else torch.zeros_like(last)  # (B,)
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        last = delta + gamma * lam * last
        reversed_advantages.append(last)
    advantages = torch.stack(reversed_advantages[::-1], dim=1)  # (B, T - start)
    returns = advantages + values[:, start:]  # (B, T - start)
    return advantages.detach(), returns.detach()


def mixed_advantage(reward_advantage: torch.Tensor, cost_advantage: torch.Tensor, lam: float) -> torch.Tensor:
    """Safe RLHF actor advantage (§6.4): (A^R - λ·A^C) / (1 + λ), with λ a detached scalar."""
    return (reward_advantage - lam * cost_advantage) / (1.0 + lam)


def shaped_reward(reward: torch.Tensor, cost: torch.Tensor, nu: float) -> torch.Tensor:
    """Reward-shaping baseline (§7.2): the fixed trade-off R - ν·C, per sequence. (B,) -> (B,)."""
    return reward - nu * cost
