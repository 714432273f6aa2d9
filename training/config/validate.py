"""Validation of a stage's config without running it, for the platform (torch-free by contract).

The web process calls :func:`validate_stage_config` when a job is submitted, so a config the stage
would refuse is refused at once with the very message ``python -m training STAGE`` prints.
"""

from __future__ import annotations

from typing import Any

from training.config.base import build_config, config_to_dict


def validate_stage_config(stage: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config of ``stage`` as the stage would see it, as a JSON-ready dict.

    ``config`` holds run.json's key/value pairs (JSON values or the strings of ``--key=value``).
    Returns every field, defaults and presets filled in and values converted to their declared
    types (tuples as lists). Raises :class:`training.errors.ConfigError` with the CLI's exact
    message for an unknown stage, an unknown or missing option, or a bad value. Files and model
    directories are not checked here: they may live on the machine that runs the stage.
    """
    from training.stages import get_stage  # here: the registry imports this package

    spec = get_stage(stage)
    return config_to_dict(build_config(spec.config_cls, dict(config), stage=spec.name))
