"""Stage configs: frozen dataclasses with help text on every field (torch-free by contract).

Each stage has one config class; a run is described by a ``run.json`` holding its fields, and
``python -m training STAGE --config run.json --key=value`` overlays command-line values.
:func:`validate_stage_config` checks a config the way the stage would, without torch.
"""

from training.config.base import (
    build_config,
    coerce,
    config_to_dict,
    describe_config,
    field_help,
    load_config,
    opt,
    parse_overrides,
    read_json_config,
)
from training.config.rl import (
    PRESETS,
    DPOConfig,
    EvaluateConfig,
    GenerateConfig,
    PPOConfig,
    PPOLagConfig,
    RewardShapingConfig,
    RLConfig,
)
from training.config.runtime import RuntimeConfig
from training.config.tiny import InitTinyConfig
from training.config.training import (
    CostModelConfig,
    RewardModelConfig,
    ScoreModelConfig,
    SFTConfig,
    TrainingConfig,
)
from training.config.validate import validate_stage_config

__all__ = [
    "PRESETS",
    "CostModelConfig",
    "DPOConfig",
    "EvaluateConfig",
    "GenerateConfig",
    "InitTinyConfig",
    "PPOConfig",
    "PPOLagConfig",
    "RLConfig",
    "RewardModelConfig",
    "RewardShapingConfig",
    "RuntimeConfig",
    "SFTConfig",
    "ScoreModelConfig",
    "TrainingConfig",
    "build_config",
    "coerce",
    "config_to_dict",
    "describe_config",
    "field_help",
    "load_config",
    "opt",
    "parse_overrides",
    "read_json_config",
    "validate_stage_config",
]
