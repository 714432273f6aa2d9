"""The reward-shaping baseline: PPO on R - ν·C with a fixed ν (docs/design/method.md §7.2).

``python -m training reward-shaping --config run.json --nu 1.0``. One critic (from the reward
model) learns the shaped return; the episode-cost window is tracked only for logging. The paper
sweeps ν ∈ {0.01, 0.5, 1, 2, 5, 10, 100}: small ν stays unsafe, large ν over-refuses.
"""

from __future__ import annotations

from training.algorithms.objectives import ShapingObjective
from training.algorithms.ppo import advantage_settings
from training.algorithms.rl_trainer import PolicyTrainer
from training.config import RewardShapingConfig


def run_reward_shaping(config: RewardShapingConfig) -> dict[str, float]:
    objective = ShapingObjective(advantage_settings(config), config.nu, config.episode_cost_window_size)
    return PolicyTrainer(config, objective, "reward-shaping").run()
