"""The stage registry behind ``python -m training STAGE`` (torch-free until a stage runs).

A stage is a name, a frozen config dataclass and a runner given as ``"module:function"``, imported
only when the stage runs. To add one (PPO, PPO-Lag, DPO, ...)::

    register_stage(Stage("ppo-lag", PPOLagConfig, "training.algorithms.ppo_lagrangian:run_ppo_lag",
                         "PPO-Lagrangian (Safe RLHF)"))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training.config import (
    CostModelConfig,
    DPOConfig,
    EvaluateConfig,
    GenerateConfig,
    InitTinyConfig,
    PPOConfig,
    PPOLagConfig,
    RewardModelConfig,
    RewardShapingConfig,
    SFTConfig,
)
from training.errors import ConfigError


@dataclass(frozen=True)
class Stage:
    name: str
    config_cls: type
    runner: str  # "package.module:function"; the function takes the config, returns a summary dict
    summary: str
    trains: bool = True  # writes output_dir/events.jsonl, checkpoints and summary.json

    def load_runner(self) -> Callable[[Any], dict[str, Any]]:
        module, _, function = self.runner.partition(":")
        return getattr(importlib.import_module(module), function)


STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> None:
    if stage.name in STAGES:
        raise ValueError(f"stage {stage.name!r} is already registered")
    STAGES[stage.name] = stage


def get_stage(name: str) -> Stage:
    if name not in STAGES:
        import difflib

        close = difflib.get_close_matches(name, list(STAGES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown stage {name!r}{hint} (stages: {', '.join(STAGES)})")
    return STAGES[name]


register_stage(
    Stage(
        "init-tiny",
        InitTinyConfig,
        "training.models.tiny:run_init_tiny",
        "train a BPE tokenizer on a corpus and build a random Llama-style LM",
        trains=False,
    )
)
register_stage(Stage("sft", SFTConfig, "training.algorithms.sft:run_sft", "supervised fine-tuning"))
register_stage(
    Stage(
        "reward",
        RewardModelConfig,
        "training.algorithms.reward_model:run_reward",
        "reward model on helpfulness preferences",
    )
)
register_stage(
    Stage(
        "cost",
        CostModelConfig,
        "training.algorithms.cost_model:run_cost",
        "cost model on harmlessness preferences and safety labels",
    )
)
register_stage(
    Stage("ppo", PPOConfig, "training.algorithms.ppo:run_ppo", "RLHF with PPO on the reward model")
)
register_stage(
    Stage(
        "ppo-lag",
        PPOLagConfig,
        "training.algorithms.ppo_lagrangian:run_ppo_lag",
        "Safe RLHF: PPO-Lagrangian with reward and cost models (presets: reference, beaver-v1..v3)",
    )
)
register_stage(
    Stage(
        "reward-shaping",
        RewardShapingConfig,
        "training.algorithms.reward_shaping:run_reward_shaping",
        "baseline: PPO on R - nu*C with a fixed nu",
    )
)
register_stage(
    Stage("dpo", DPOConfig, "training.algorithms.dpo:run_dpo", "baseline: DPO on helpfulness preferences")
)
register_stage(
    Stage(
        "generate",
        GenerateConfig,
        "training.evaluation.generate:run_generate",
        "sample a policy's answers to a prompt set (optionally scored)",
    )
)
register_stage(
    Stage(
        "evaluate",
        EvaluateConfig,
        "training.evaluation.arena:run_evaluate",
        "arena: two policies answer the same prompts; RM/CM win rates and safety",
    )
)
