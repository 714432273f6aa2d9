"""DeepSpeed configs built from a stage config (docs/design/method.md §12.1). Torch-free, pure dicts."""

from __future__ import annotations

from typing import Any

from training.config import TrainingConfig

# Stage-3 knobs of the reference implementation (§12.1).
STAGE3_SETTINGS = {
    "stage3_param_persistence_threshold": int(1e4),
    "stage3_max_live_parameters": int(3e7),
    "stage3_prefetch_bucket_size": int(3e7),
    "stage3_gather_16bit_weights_on_model_save": True,
}


def _offload(offload: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if offload in ("parameter", "all"):
        out["offload_param"] = {"device": "cpu", "pin_memory": True}
    if offload in ("optimizer", "all"):
        out["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    return out


def build_deepspeed_config(config: TrainingConfig, *, world_size: int, bf16: bool) -> dict[str, Any]:
    """Training-engine config: ZeRO stage, offload, batch sizes, clipping and precision.

    The optimizer and the LR schedule are client objects (not in this dict), so no fused-Adam op
    is JIT-built; gradient clipping is done by DeepSpeed.
    """
    if config.zero_stage is None:
        raise ValueError("build_deepspeed_config needs zero_stage set")
    zero: dict[str, Any] = {"stage": config.zero_stage, **_offload(config.offload)}
    if config.zero_stage == 3:
        zero.update(STAGE3_SETTINGS)
    micro, accum = config.per_device_train_batch_size, config.gradient_accumulation_steps
    return {
        "train_batch_size": micro * world_size * accum,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accum,
        "gradient_clipping": config.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": False},
        # A torch AdamW is allowed with optimizer offload (DeepSpeedCPUAdam is used when available).
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


def build_eval_deepspeed_config(
    *, zero_stage: int, offload: str, bf16: bool, world_size: int = 1
) -> dict[str, Any]:
    """Config of a frozen (inference) engine: ZeRO 0 or 3 (1 and 2 map to 0), micro-batch 1 (§12.1)."""
    stage = 3 if zero_stage == 3 else 0
    zero: dict[str, Any] = {"stage": stage}
    if stage == 3:
        zero.update(STAGE3_SETTINGS)
        if offload in ("parameter", "all"):
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_batch_size": world_size,  # DeepSpeed checks micro x accumulation x ranks even here
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": False},
        "steps_per_print": 2**31 - 1,
    }
