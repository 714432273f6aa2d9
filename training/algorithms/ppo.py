"""Plain RLHF with PPO on the reward model (docs/design/method.md §5, §7.1).

``python -m training ppo --config run.json``: actor and reference from the SFT model, a frozen
reward model and a reward critic initialised from it; per-token reward -β·kl plus the RM score at
the last kept token, GAE (γ = 1, λ = 0.95), clipped policy and value losses.
"""

from __future__ import annotations

from training.algorithms.experience import AdvantageSettings
from training.algorithms.objectives import RewardObjective
from training.algorithms.rl_trainer import PolicyTrainer
from training.config import PPOConfig, RLConfig


def advantage_settings(config: RLConfig) -> AdvantageSettings:
    return AdvantageSettings(config.kl_coeff, config.clip_range_score, config.gamma, config.gae_lambda)


def run_ppo(config: PPOConfig) -> dict[str, float]:
    return PolicyTrainer(config, RewardObjective(advantage_settings(config)), "ppo").run()
