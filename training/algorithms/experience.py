"""Scoring a rollout and turning it into advantages (docs/design/method.md §5.2–5.4, §6.3–6.4).

Each frozen or critic network runs exactly one forward pass over the rollout: the reference (for
the KL), the reward and cost models (end score at the last kept token, i.e. the EOS when the
response ended), and each critic (per-token values). The actor's old log-probs come from the
sampling step itself (:mod:`training.algorithms.rollout`), so the actor needs no extra forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.algorithms.advantages import gae, kl_shaped_scores
from training.algorithms.rollout import Rollout, response_log_probs
from training.models import ScoreModel


@dataclass
class Experience:
    """One rolled-out micro-batch with everything the update needs. R = response width."""

    rollout: Rollout
    ref_log_probs: torch.Tensor  # (B, R)
    reward: torch.Tensor  # (B,) reward-model end score
    reward_values: torch.Tensor  # (B, R) reward-critic V(state before response token j)
    cost: torch.Tensor | None = None  # (B,) cost-model end score (> 0: unsafe)
    cost_values: torch.Tensor | None = None  # (B, R)
    sequence_reward: torch.Tensor | None = None  # (B,) the score the reward side optimises
    shaped_rewards: torch.Tensor | None = None  # (B, R) r_t after KL shaping and clipping
    reward_advantages: torch.Tensor | None = None  # (B, R)
    reward_returns: torch.Tensor | None = None  # (B, R)
    shaped_costs: torch.Tensor | None = None  # (B, R) c_t
    cost_advantages: torch.Tensor | None = None  # (B, R)
    cost_returns: torch.Tensor | None = None  # (B, R)

    @property
    def mask(self) -> torch.Tensor:
        return self.rollout.response_mask  # (B, R) bool

    @property
    def log_probs(self) -> torch.Tensor:
        return self.rollout.log_probs  # (B, R)


def end_scores(model: ScoreModel, rollout: Rollout) -> torch.Tensor:
    """Sequence score at the last attended token (§2.1): (B,)."""
    return model(rollout.input_ids, rollout.attention_mask, right_padded=False).end_scores[:, 0].float()


def token_values(
    critic: ScoreModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int
) -> torch.Tensor:
    """Critic values at positions S-1 .. L-2, i.e. V of the state each response token is chosen
    in (§5.2: the last position is dropped). (B, R); differentiable when grad is enabled."""
    scores = critic(input_ids, attention_mask, right_padded=False).scores[..., 0]  # (B, L)
    return scores[:, prompt_width - 1 : -1].float()  # (B, R)


@torch.no_grad()
def score_rollout(
    rollout: Rollout,
    reference: nn.Module,
    reward_model: ScoreModel,
    reward_critic: ScoreModel,
    cost_model: ScoreModel | None = None,
    cost_critic: ScoreModel | None = None,
) -> Experience:
    """The experience of one micro-batch: one forward pass per network."""
    ids, attn, width = rollout.input_ids, rollout.attention_mask, rollout.prompt_width
    mask = rollout.response_mask.float()
    return Experience(
        rollout=rollout,
        ref_log_probs=response_log_probs(reference, ids, attn, width) * mask,
        reward=end_scores(reward_model, rollout),
        reward_values=token_values(reward_critic, ids, attn, width) * mask,
        cost=None if cost_model is None else end_scores(cost_model, rollout),
        cost_values=None if cost_critic is None else token_values(cost_critic, ids, attn, width) * mask,
    )


@dataclass(frozen=True)
class AdvantageSettings:
    kl_coeff: float
    clip_range_score: float
    gamma: float = 1.0
    gae_lambda: float = 0.95


def reward_side(exp: Experience, sequence_reward: torch.Tensor, settings: AdvantageSettings) -> None:
    """r_t = -β·kl_t + 1[t=end]·R, clipped (§5.3); GAE against the reward critic (§5.4)."""
    exp.sequence_reward = sequence_reward
    exp.shaped_rewards = kl_shaped_scores(
        sequence_reward,
        exp.log_probs,
        exp.ref_log_probs,
        exp.mask,
        settings.kl_coeff,
        settings.clip_range_score,
    )
    exp.reward_advantages, exp.reward_returns = gae(
        exp.reward_values,
        exp.shaped_rewards,
        exp.mask,
        start=0,
        gamma=settings.gamma,
        lam=settings.gae_lambda,
    )


def cost_side(exp: Experience, settings: AdvantageSettings) -> None:
    """c_t = +β·kl_t + 1[t=end]·C, clipped (§6.4); GAE against the cost critic."""
    assert exp.cost is not None and exp.cost_values is not None
    exp.shaped_costs = kl_shaped_scores(
        exp.cost,
        exp.log_probs,
        exp.ref_log_probs,
        exp.mask,
        settings.kl_coeff,
        settings.clip_range_score,
        kl_sign=1.0,
    )
    exp.cost_advantages, exp.cost_returns = gae(
        exp.cost_values, exp.shaped_costs, exp.mask, start=0, gamma=settings.gamma, lam=settings.gae_lambda
    )


def kl_per_sequence(exp: Experience) -> torch.Tensor:
    """Σ_t (logp_old - ref_logp) over kept tokens (§5.7 ``kl_divergence``): (B,)."""
    return ((exp.log_probs - exp.ref_log_probs) * exp.mask).sum(dim=1)
