"""AdamW with the reference weight-decay groups, and the warmup + cosine/linear/constant schedule."""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


class OptimizerOptions(Protocol):
    """What the optimizer, the schedule and the backend read of a config (a TrainingConfig or the
    per-network settings of the policy stages)."""

    @property
    def learning_rate(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def adam_betas(self) -> tuple[float, float]: ...
    @property
    def lr_scheduler_type(self) -> str: ...
    @property
    def lr_warmup_ratio(self) -> float: ...
    @property
    def max_grad_norm(self) -> float: ...
    @property
    def gradient_accumulation_steps(self) -> int: ...


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Upstream rule (§3.3): names containing ``bias`` or ``layernorm.weight`` get no decay.

    As upstream, LLaMA's final ``norm.weight`` (no "layernorm" in its name) is still decayed.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lowered = name.lower()
        (no_decay if "bias" in lowered or "layernorm.weight" in lowered else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module, config: OptimizerOptions, *, cpu_offload: bool = False
) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.weight_decay)
    if cpu_offload:
        from deepspeed.ops.adam import DeepSpeedCPUAdam  # spec §12.1: CPU Adam with optimizer offload

        return DeepSpeedCPUAdam(groups, lr=config.learning_rate, betas=config.adam_betas, adamw_mode=True)
    # The fused kernel does the whole update in one pass (the default of HF Trainer on torch >= 2.8);
    # on CPU it is ~10x faster than the per-tensor loop for small models.
    fused = all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"]
    )
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=config.adam_betas, fused=fused or None)


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, kind: str) -> float:
    """Multiplier of the peak LR after ``step`` optimizer steps: linear warmup, then the decay."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if kind == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, progress)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimizerOptions, total_steps: int) -> LambdaLR:
    warmup = math.ceil(config.lr_warmup_ratio * total_steps)

    def factor(step: int) -> float:
        return lr_factor(step, total_steps=total_steps, warmup_steps=warmup, kind=config.lr_scheduler_type)

    return LambdaLR(optimizer, factor)
