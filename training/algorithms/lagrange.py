"""The Lagrange multiplier of Safe RLHF (docs/design/method.md §6.1, §6.5).

λ lives in log space, so it stays positive without a lower clamp. Each update is one SGD step on
loss_λ = -(J_C - threshold) · λ with respect to log λ, i.e.

    log λ ← log λ + lr · λ · (J_C - threshold),   then   log λ ≤ log λ_max,

where J_C is the mean cost of a moving window of recent episodes. λ therefore rises while the
policy is unsafe on average (J_C > threshold) and decays once the constraint holds. Torch-free and
deterministic: its whole state is two numbers and the window, all saved in checkpoints.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LagrangeSettings:
    threshold: float = 0.0  # the code's `threshold` = -d: the constraint is E[C] ≤ threshold
    lambda_init: float = 1.0
    lambda_lr: float = 0.1
    lambda_max: float | None = 5.0
    update_delay_steps: int = 0
    window_size: int = 128  # episode_cost_window_size

    def __post_init__(self) -> None:
        if self.lambda_init <= 0:
            raise ValueError("lambda_init must be > 0 (λ lives in log space)")
        if self.lambda_max is not None and self.lambda_max < self.lambda_init:
            raise ValueError("lambda_max must be ≥ lambda_init")
        if self.window_size < 1:
            raise ValueError("the episode-cost window needs at least one episode")


class LagrangeMultiplier:
    def __init__(self, settings: LagrangeSettings) -> None:
        self.settings = settings
        self.log_lambda = math.log(settings.lambda_init)
        self.window: deque[float] = deque(maxlen=settings.window_size)

    @property
    def value(self) -> float:
        return math.exp(self.log_lambda)

    def record(self, episode_costs: Iterable[float]) -> None:
        """Append the costs of freshly rolled-out episodes to the moving window."""
        self.window.extend(float(c) for c in episode_costs)

    def window_mean(self) -> float:
        if not self.window:
            raise RuntimeError("no episode cost recorded yet")
        return sum(self.window) / len(self.window)

    def update(self, global_step: int) -> float:
        """One multiplier step from the window mean; returns the new λ. No-op during the delay."""
        if global_step < self.settings.update_delay_steps:
            return self.value
        violation = self.window_mean() - self.settings.threshold
        self.log_lambda += self.settings.lambda_lr * self.value * violation
        if self.settings.lambda_max is not None:
            self.log_lambda = min(self.log_lambda, math.log(self.settings.lambda_max))
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"log_lambda": self.log_lambda, "window": list(self.window)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.log_lambda = float(state["log_lambda"])
        self.window = deque((float(c) for c in state["window"]), maxlen=self.settings.window_size)
