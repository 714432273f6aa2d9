"""Safe RLHF: PPO-Lagrangian (docs/design/method.md §6; Dai et al. 2024, eq. for the Lagrangian dual).

``python -m training ppo-lag --config run.json [--preset beaver-v2] [--key=value ...]``:

    max_θ J_R(θ)  s.t.  J_C(θ) ≤ threshold,   solved as   min_θ max_{λ ≥ 0} -J_R(θ) + λ·J_C(θ).

Six networks: actor, reference, reward and cost models, and a reward and a cost critic initialised
from them. Per token, r_t = -β·kl_t + 1[t=end]·R and c_t = +β·kl_t + 1[t=end]·C (clipped); two
GAEs; the actor's advantage is (A^R - λ·A^C)/(1 + λ); λ is stepped in log space from the mean
cost of a moving window of episodes before every optimizer step (§6.5).
"""

from __future__ import annotations

from training.algorithms.lagrange import LagrangeSettings
from training.algorithms.objectives import LagrangianObjective
from training.algorithms.ppo import advantage_settings
from training.algorithms.rl_trainer import PolicyTrainer
from training.config import PPOLagConfig
from training.config.rl import preset_value


def lagrange_settings(config: PPOLagConfig) -> LagrangeSettings:
    return LagrangeSettings(
        threshold=preset_value(config.threshold),
        lambda_init=preset_value(config.lambda_init),
        lambda_lr=preset_value(config.lambda_lr),
        lambda_max=config.lambda_max,
        update_delay_steps=config.lambda_update_delay_steps,
        window_size=config.episode_cost_window_size,
    )


def build_objective(config: PPOLagConfig) -> LagrangianObjective:
    return LagrangianObjective(advantage_settings(config), lagrange_settings(config))


def run_ppo_lag(config: PPOLagConfig) -> dict[str, float]:
    return PolicyTrainer(config, build_objective(config), "ppo-lag").run()
