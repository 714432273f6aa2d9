"""The stage registry behind ``python -m training STAGE`` (torch-free until a stage runs).

A stage is a name, a frozen config dataclass and a runner given as ``"module:function"``, imported
only when the stage runs. To add one::

    register_stage(Stage("ppo-lag", PPOLagConfig, "training.algorithms.ppo_lagrangian:run_ppo_lag",
                         "PPO-Lagrangian (Safe RLHF)", produces="policy",
                         input_fields={"base_model": "model_name_or_path", ...}))

Contract for the platform (importing this module pulls in no torch, transformers or numpy):

* ``Stage.produces``: the kind of model the stage writes into its output directory: ``"policy"``
  (a causal LM: sft, ppo, ppo-lag, reward-shaping, dpo), ``"reward"``, ``"cost"`` (score models), or
  None (``generate``, ``evaluate``, ``init-tiny``: outputs that are not a trained model; init-tiny's
  random LM is a starting point, not a result).
* ``Stage.input_fields``: role -> config key naming an input path, for every path the stage reads.
  Roles (:data:`INPUT_ROLES`): ``base_model`` (the model a stage starts from or samples),
  ``reference_model``, ``reward_model``, ``cost_model``, ``reward_critic``, ``cost_critic``,
  ``red_model``, ``blue_model``, ``dataset`` (training rows or prompts), ``eval_dataset``,
  ``ptx_dataset``, ``corpus``. Whether a role is required follows from the config field
  (:meth:`Stage.required_inputs`).
* ``Stage.output_field``: the config key of the output directory (``output_dir``; ``out`` for init-tiny),
  where ``events.jsonl`` (see :mod:`training.events`) and the stage's results are written.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal

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

ModelKind = Literal["policy", "reward", "cost"]
INPUT_ROLES = (
    "base_model",
    "reference_model",
    "reward_model",
    "cost_model",
    "reward_critic",
    "cost_critic",
    "red_model",
    "blue_model",
    "dataset",
    "eval_dataset",
    "ptx_dataset",
    "corpus",
)


@dataclass(frozen=True)
class Stage:
    name: str
    config_cls: type
    runner: str  # "package.module:function"; the function takes the config, returns a summary dict
    summary: str
    trains: bool = True  # takes optimizer steps and checkpoints (resume applies)
    produces: ModelKind | None = None  # the model kind written to the output directory
    input_fields: dict[str, str] = field(default_factory=dict)  # role -> config key of an input path
    output_field: str = "output_dir"  # config key of the output directory

    def __post_init__(self) -> None:
        names = {f.name for f in fields(self.config_cls)}
        for role, key in self.input_fields.items():
            if role not in INPUT_ROLES or key not in names:
                raise ValueError(f"stage {self.name!r}: bad input field {role!r} -> {key!r}")
        if self.output_field not in names:
            raise ValueError(f"stage {self.name!r}: no output field {self.output_field!r}")

    def load_runner(self) -> Callable[[Any], dict[str, Any]]:
        module, _, function = self.runner.partition(":")
        runner: Callable[[Any], dict[str, Any]] = getattr(importlib.import_module(module), function)
        return runner

    def required_inputs(self) -> list[str]:
        """The roles of ``input_fields`` the config cannot run without (fields with no default)."""
        required = {f.name for f in fields(self.config_cls) if f.default is MISSING}
        return [role for role, key in self.input_fields.items() if key in required]


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
        input_fields={"corpus": "corpus"},
        output_field="out",
    )
)
_SUPERVISED = {"base_model": "model_name_or_path", "dataset": "train_data", "eval_dataset": "eval_data"}
_RL = {
    **_SUPERVISED,
    "reward_model": "reward_model_name_or_path",
    "reward_critic": "reward_critic_model_name_or_path",
    "ptx_dataset": "ptx_data",
}
register_stage(
    Stage(
        "sft",
        SFTConfig,
        "training.algorithms.sft:run_sft",
        "supervised fine-tuning",
        produces="policy",
        input_fields=_SUPERVISED,
    )
)
register_stage(
    Stage(
        "reward",
        RewardModelConfig,
        "training.algorithms.reward_model:run_reward",
        "reward model on helpfulness preferences",
        produces="reward",
        input_fields=_SUPERVISED,
    )
)
register_stage(
    Stage(
        "cost",
        CostModelConfig,
        "training.algorithms.cost_model:run_cost",
        "cost model on harmlessness preferences and safety labels",
        produces="cost",
        input_fields=_SUPERVISED,
    )
)
register_stage(
    Stage(
        "ppo",
        PPOConfig,
        "training.algorithms.ppo:run_ppo",
        "RLHF with PPO on the reward model",
        produces="policy",
        input_fields=_RL,
    )
)
register_stage(
    Stage(
        "ppo-lag",
        PPOLagConfig,
        "training.algorithms.ppo_lagrangian:run_ppo_lag",
        "Safe RLHF: PPO-Lagrangian with reward and cost models (presets: reference, beaver-v1..v3)",
        produces="policy",
        input_fields={
            **_RL,
            "cost_model": "cost_model_name_or_path",
            "cost_critic": "cost_critic_model_name_or_path",
        },
    )
)
register_stage(
    Stage(
        "reward-shaping",
        RewardShapingConfig,
        "training.algorithms.reward_shaping:run_reward_shaping",
        "baseline: PPO on R - nu*C with a fixed nu",
        produces="policy",
        input_fields={**_RL, "cost_model": "cost_model_name_or_path"},
    )
)
register_stage(
    Stage(
        "dpo",
        DPOConfig,
        "training.algorithms.dpo:run_dpo",
        "baseline: DPO on helpfulness preferences",
        produces="policy",
        input_fields={**_SUPERVISED, "reference_model": "reference_model_name_or_path"},
    )
)
register_stage(
    Stage(
        "generate",
        GenerateConfig,
        "training.evaluation.generate:run_generate",
        "sample a policy's answers to a prompt set (optionally scored)",
        trains=False,
        input_fields={
            "base_model": "model_name_or_path",
            "reward_model": "reward_model_name_or_path",
            "cost_model": "cost_model_name_or_path",
            "dataset": "prompt_data",
        },
    )
)
register_stage(
    Stage(
        "evaluate",
        EvaluateConfig,
        "training.evaluation.arena:run_evaluate",
        "arena: two policies answer the same prompts; RM/CM win rates and safety",
        trains=False,
        input_fields={
            "red_model": "red_model_name_or_path",
            "blue_model": "blue_model_name_or_path",
            "reward_model": "reward_model_name_or_path",
            "cost_model": "cost_model_name_or_path",
            "dataset": "prompt_data",
        },
    )
)
