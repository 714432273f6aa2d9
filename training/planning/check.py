"""The refusal a stage makes before loading anything: a run whose model states alone cannot fit
its GPUs under the configured ZeRO stage and offload stops with one line (exit 2), instead of
failing with an out-of-memory error after loading six networks. Torch-free arithmetic."""

from __future__ import annotations

import logging
from typing import Any

from training.errors import ConfigError
from training.planning.cli import networks_of
from training.planning.memory import plan_all, plan_setting, recommend

GiB = 2**30
logger = logging.getLogger(__name__)


def ensure_fits(stage: str, config: dict[str, Any], *, gpus: int, gpu_memory: float) -> None:
    """Raise :class:`ConfigError` when the configured setting's model states exceed ``gpu_memory``
    per GPU (no headroom: only runs that certainly cannot fit are refused)."""
    zero_stage = config.get("zero_stage")
    offload = str(config.get("offload") or "none")
    try:
        networks = networks_of(stage, config)
    except ConfigError as exc:  # a shape the planner cannot read is no reason to refuse the run
        logger.warning("memory plan skipped: %s", exc)
        return
    plan = plan_setting(
        networks, stage=0 if zero_stage is None else int(zero_stage), offload=offload, gpus=gpus
    )
    if plan.total <= gpu_memory:
        return
    best = recommend(plan_all(networks, gpus), gpu_memory)
    hint = (
        f"zero_stage={best.stage} offload={best.offload} would fit"
        if best is not None
        else "no ZeRO stage or offload fits: add GPUs"
    )
    raise ConfigError(
        f"{stage} cannot fit: its model states need {plan.total / GiB:.1f} GiB per GPU under "
        f"zero_stage={zero_stage} offload={offload} on {gpus} GPU(s) of {gpu_memory / GiB:.1f} GiB; "
        f"{hint} (see python -m training plan)"
    )
