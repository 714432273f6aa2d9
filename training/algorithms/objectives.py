"""What the policy optimises: the one difference between PPO, reward shaping and PPO-Lag.

The shared loop (:mod:`training.algorithms.rl_trainer`) asks an objective which networks it needs,
how to turn scores into advantages, and what the actor's advantage is:

* :class:`RewardObjective`: plain PPO on R (§5, §7.1).
* :class:`ShapingObjective`: PPO on R - ν·C with a fixed ν (§7.2); costs only logged.
* :class:`LagrangianObjective`: Safe RLHF (§6): reward and cost critics, the mixed advantage
  (A^R - λ·A^C)/(1 + λ) and λ updated in log space from the moving-window episode cost.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from training.algorithms.advantages import mixed_advantage, shaped_reward
from training.algorithms.experience import AdvantageSettings, Experience, cost_side, reward_side
from training.algorithms.lagrange import LagrangeMultiplier, LagrangeSettings
from training.engine.distributed import all_gather_cat, broadcast_float


def global_episode_costs(experiences: list[Experience]) -> list[float]:
    """The costs of this rollout batch's episodes on every rank, in rank order: with several ranks
    the episode-cost window (and so J_C) is global, the same list on every rank (§6.5)."""
    costs = []
    for exp in experiences:
        assert exp.cost is not None
        costs.append(exp.cost.detach().float())
    return [float(c) for c in all_gather_cat(torch.cat(costs)).tolist()]


class RewardObjective:
    """Plain PPO: maximise the reward model's score minus the KL penalty."""

    name = "ppo"
    uses_cost_model = False
    uses_cost_critic = False

    def __init__(self, settings: AdvantageSettings) -> None:
        self.settings = settings

    def record(self, experiences: list[Experience]) -> None:
        """Called once per rollout batch with its episodes (before any update)."""

    def compute_advantages(self, exp: Experience) -> None:
        reward_side(exp, exp.reward, self.settings)

    def update_multiplier(self, global_step: int) -> dict[str, float]:
        """Called at the start of every optimizer step (§6.5); nothing to update here."""
        return {}

    def actor_advantages(self, exp: Experience) -> torch.Tensor:
        assert exp.reward_advantages is not None
        return exp.reward_advantages  # (B, R)

    def metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


class ShapingObjective(RewardObjective):
    """Reward shaping: the sequence reward is R - ν·C with ν fixed (§7.2)."""

    name = "reward-shaping"
    uses_cost_model = True

    def __init__(self, settings: AdvantageSettings, nu: float, window_size: int) -> None:
        super().__init__(settings)
        self.nu = nu
        self.window: deque[float] = deque(maxlen=window_size)

    def record(self, experiences: list[Experience]) -> None:
        self.window.extend(global_episode_costs(experiences))

    def compute_advantages(self, exp: Experience) -> None:
        assert exp.cost is not None
        reward_side(exp, shaped_reward(exp.reward, exp.cost, self.nu), self.settings)

    def metrics(self) -> dict[str, float]:
        return {"train/episode_cost": sum(self.window) / len(self.window)} if self.window else {}

    def state_dict(self) -> dict[str, Any]:
        return {"window": list(self.window)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.window = deque((float(c) for c in state["window"]), maxlen=self.window.maxlen)


class LagrangianObjective(RewardObjective):
    """Safe RLHF's PPO-Lagrangian: max J_R s.t. J_C ≤ threshold via min_θ max_λ (§6.1)."""

    name = "ppo-lag"
    uses_cost_model = True
    uses_cost_critic = True

    def __init__(self, settings: AdvantageSettings, lagrange: LagrangeSettings) -> None:
        super().__init__(settings)
        self.multiplier = LagrangeMultiplier(lagrange)

    def record(self, experiences: list[Experience]) -> None:
        self.multiplier.record(global_episode_costs(experiences))  # §6.3: every rollout cost, all ranks

    def compute_advantages(self, exp: Experience) -> None:
        reward_side(exp, exp.reward, self.settings)  # r_t = -β·kl_t + 1[t=end]·R
        cost_side(exp, self.settings)  # c_t = +β·kl_t + 1[t=end]·C

    def update_multiplier(self, global_step: int) -> dict[str, float]:
        """§6.5: ln λ ← ln λ + lr·λ·(J_C - threshold), clamped at ln λ_max, after the delay.
        Every rank computes it from the same global window; rank 0's value is then broadcast so
        that λ is bit-identical everywhere whatever the ranks' float behaviour."""
        self.multiplier.update(global_step)
        self.multiplier.log_lambda = broadcast_float(self.multiplier.log_lambda)
        return self.metrics()

    def actor_advantages(self, exp: Experience) -> torch.Tensor:
        """(A^R - λ·A^C)/(1 + λ) with the λ just updated, a detached scalar (§6.4). Its KL part is
        -β·kl·(1 + λ)/(1 + λ) = -β·kl: the effective KL coefficient does not depend on λ."""
        assert exp.reward_advantages is not None and exp.cost_advantages is not None
        return mixed_advantage(exp.reward_advantages, exp.cost_advantages, self.multiplier.value)

    def metrics(self) -> dict[str, float]:
        out = {"train/lambda": self.multiplier.value}
        if self.multiplier.window:
            out["train/episode_cost"] = self.multiplier.window_mean()
        return out

    def state_dict(self) -> dict[str, Any]:
        return self.multiplier.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.multiplier.load_state_dict(state)
