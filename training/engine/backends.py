"""Execution backends of the training loop: plain PyTorch, and DeepSpeed (ZeRO 0-3, offload).

Both expose the same small surface, so the loop never branches on the backend:
``forward_model`` (what to call), ``autocast()``, ``backward(loss)``, ``step()``,
``save_state(dir)`` / ``load_state(dir)`` (pickle-free, see ``engine.checkpoint``) and
``full_state_dict()`` for exporting the final model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from training.config import TrainingConfig
from training.engine.distributed import is_main_process, world_size
from training.engine.optim import OptimizerOptions, build_optimizer, build_scheduler
from training.engine.serialization import load_state, save_state

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def zero3_local_weights(module: nn.Module, zero: Any) -> Iterator[None]:
    """A ZeRO-3 module gathered once, with DeepSpeed's per-module hooks taken off while inside, so
    that forward passes (decoding, evaluation) run on local weights and need no collective: ranks
    may then run different numbers of them. With the hooks on, each module's post-forward hook
    re-partitions what was gathered and the next forward gathers it again, layer by layer. The
    hooks are put back, with a fresh trace, on the way out. Every rank must enter (the gather is a
    collective). ``zero`` is the engine's ZeRO-3 optimizer, or its parameter-offload object for an
    engine without optimizer."""
    import deepspeed

    offload = getattr(zero, "parameter_offload", zero)
    with deepspeed.zero.GatheredParameters(list(module.parameters())):
        for param in module.parameters():
            cast(Any, param).ds_active_sub_modules.clear()  # ZeRO-3's attribute
        for hook in [*offload.forward_hooks, *offload.backward_hooks]:
            hook.remove()
        offload.forward_hooks, offload.backward_hooks = [], []
        try:
            yield
        finally:
            coordinator = getattr(offload, "param_coordinator", None)
            if coordinator is not None and not coordinator.is_invalid_trace():
                coordinator._invalidate_trace()
            offload._register_deepspeed_module(offload.module)


class TorchBackend:
    """Single-process training: AdamW, LR schedule, gradient clipping, bf16 autocast on GPU."""

    def __init__(
        self, model: nn.Module, config: OptimizerOptions, total_steps: int, device: torch.device, bf16: bool
    ) -> None:
        if world_size() > 1:
            raise RuntimeError("multi-process runs need DeepSpeed: set zero_stage (0-3)")
        self.model = model.to(device)
        self.forward_model: nn.Module = self.model
        self.device = device
        self.bf16 = bf16
        self.max_grad_norm = config.max_grad_norm
        self.accumulation = config.gradient_accumulation_steps
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = build_scheduler(self.optimizer, config, total_steps)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.accumulation).backward()

    def step(self) -> float | None:
        grad_norm = None
        if self.max_grad_norm > 0:
            grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def current_lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def unwrap(self) -> nn.Module:
        return self.model

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def save_state(self, directory: Path) -> None:
        save_model(self.model, str(directory / "model.safetensors"))
        save_state(directory, "optimizer", self.optimizer.state_dict())
        save_state(directory, "scheduler", self.scheduler.state_dict())

    def load_state(self, directory: Path) -> None:
        load_model(self.model, str(directory / "model.safetensors"), device=str(self.device))
        self.optimizer.load_state_dict(load_state(directory, "optimizer", self.device))
        self.scheduler.load_state_dict(load_state(directory, "scheduler"))


class DeepSpeedBackend:
    """DeepSpeed engine with a client AdamW (or DeepSpeedCPUAdam with optimizer offload).

    Checkpoints hold, per parameter, the full fp32 master weight and Adam moments read through
    DeepSpeed's ``safe_get_full_*`` accessors, so they are pickle-free and independent of the ZeRO
    stage and of the number of ranks.
    """

    def __init__(
        self, model: nn.Module, config: TrainingConfig, total_steps: int, device: torch.device, bf16: bool
    ) -> None:
        import deepspeed

        from training.engine.deepspeed_config import build_deepspeed_config

        self.device = device
        self.bf16 = bf16
        self.ds_config = build_deepspeed_config(config, world_size=world_size(), bf16=bf16)
        offload_optimizer = config.offload in ("optimizer", "all")
        optimizer = build_optimizer(model, config, cpu_offload=offload_optimizer and device.type == "cuda")
        scheduler = build_scheduler(optimizer, config, total_steps)
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            lr_scheduler=scheduler,
            config=self.ds_config,
            dist_init_required=True,
        )
        self.forward_model = self.engine
        self.model: nn.Module = self.engine.module  # ZeRO-3's gather hooks sit on the module itself
        self.stage = config.zero_stage or 0

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # DeepSpeed's bf16 mode casts the model itself

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of one micro-batch, scaled by 1/gradient_accumulation_steps by DeepSpeed.

        DeepSpeed counts micro-batches in ``engine.step()``, and reduces gradients only in the
        backward it believes is the last of a group; so every micro-batch but the last is
        followed by an ``engine.step()`` here (no optimizer step), and :meth:`step` does the last.
        """
        self.engine.backward(loss)
        if not self.engine.is_gradient_accumulation_boundary():
            self.engine.step()

    def step(self) -> float | None:
        self.engine.step()  # at the accumulation boundary: clip, optimizer step, LR step, zero grad
        norm = self.engine.get_global_grad_norm()
        return None if norm is None else float(norm)

    def current_lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def unwrap(self) -> nn.Module:
        return self.engine.module

    def _has_hp_mapping(self) -> bool:
        p = next(self.engine.module.parameters())
        return hasattr(p, "_hp_mapping") or hasattr(p, "ds_id")

    @contextlib.contextmanager
    def _gathered(self) -> Iterator[None]:
        if self.stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(self.engine.module.parameters()), modifier_rank=0):
                yield
        else:
            yield

    @contextlib.contextmanager
    def gathered_for_generation(self) -> Iterator[None]:
        """Under ZeRO-3, the whole module gathered once and run on local weights (see
        :func:`zero3_local_weights`); a no-op below stage 3."""
        if self.stage != 3:
            yield
            return
        with zero3_local_weights(self.model, self.engine.optimizer):
            yield

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Full module weights (ZeRO-3 gathered); call on every rank, meaningful on rank 0."""
        with self._gathered():
            return {k: v.detach().cpu().clone() for k, v in self.engine.module.state_dict().items()}

    def _link_optimizer_states(self) -> None:
        """Re-link every parameter to its Adam state fragments.

        DeepSpeed 0.19 links them lazily after the *first* param group's step, when the other
        groups have no state yet, and never again; with two groups (decay / no decay) the second
        group's fragments stay empty. Linking again once all states exist fixes that.
        """
        zero = self.engine.optimizer
        if hasattr(zero, "_lazy_init_hp_params_optimizer_state"):
            zero._hp_optimizer_states_linked = False
            zero._lazy_init_hp_params_optimizer_state()

    def _optimizer_tensors(self) -> dict[str, torch.Tensor]:
        from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

        self._link_optimizer_states()
        out: dict[str, torch.Tensor] = {}
        for name, param in self.engine.module.named_parameters():
            out[f"fp32/{name}"] = safe_get_full_fp32_param(param).cpu()
            for key in ("exp_avg", "exp_avg_sq"):
                out[f"{key}/{name}"] = safe_get_full_optimizer_state(param, key).cpu()
        return out

    def _adam_step(self) -> int:
        states = list(self.engine.optimizer.optimizer.state.values())
        return int(states[0]["step"]) if states and "step" in states[0] else 0

    def save_state(self, directory: Path) -> None:
        """Every rank must call this (the accessors all-reduce); rank 0 writes."""
        if not self._has_hp_mapping():
            state = {"model": self.full_state_dict(), "optimizer": self.engine.optimizer.state_dict()}
        else:
            state = {
                "model": self.full_state_dict(),
                "hp": self._optimizer_tensors(),
                "adam_step": self._adam_step(),
            }
        if is_main_process():
            save_state(directory, "deepspeed_state", state)
            save_state(directory, "scheduler", self.scheduler.state_dict())

    def load_state(self, directory: Path) -> None:
        state = load_state(directory, "deepspeed_state")
        with self._gathered():
            self.engine.module.load_state_dict(state["model"])
        if "optimizer" in state:
            self.engine.optimizer.load_state_dict(state["optimizer"])
        else:
            self._load_hp(state["hp"], state["adam_step"])
        self.scheduler.load_state_dict(load_state(directory, "scheduler"))
        # LambdaLR.load_state_dict restores its counters but not the optimizer's current LR.
        for group, lr in zip(self.engine.optimizer.param_groups, self.scheduler.get_last_lr(), strict=True):
            group["lr"] = lr

    def _load_hp(self, tensors: dict[str, torch.Tensor], adam_step: int) -> None:
        from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

        zero = self.engine.optimizer
        base = zero.optimizer
        # Adam state is created lazily on the first step; a resumed run has not stepped yet, so
        # create it for every flat fp32 partition (ZeRO-3 keeps them outside param_groups).
        flat = getattr(zero, "fp32_partitioned_groups_flat", None) or [
            p for group in base.param_groups for p in group["params"]
        ]
        for p in flat:
            state = base.state[p]
            if "exp_avg" not in state:
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] = torch.tensor(float(adam_step))
        self._link_optimizer_states()
        for name, param in self.engine.module.named_parameters():
            if hasattr(param, "ds_id"):  # ZeRO-3
                _set_zero3_partition(zero, param, tensors[f"fp32/{name}"], None)
                for key in ("exp_avg", "exp_avg_sq"):
                    _set_zero3_partition(zero, param, tensors[f"{key}/{name}"], key)
                continue
            safe_set_full_fp32_param(param, tensors[f"fp32/{name}"].to(self.device))
            for key in ("exp_avg", "exp_avg_sq"):
                safe_set_full_optimizer_state(param, tensors[f"{key}/{name}"].to(self.device), key)


def _set_zero3_partition(zero: Any, param: nn.Parameter, value: torch.Tensor, key: str | None) -> None:
    """This rank's slice of a full fp32 tensor into its ZeRO-3 partition (master weight or an Adam
    moment). DeepSpeed's own ``set_full_hp_param`` (0.19) reads past the end of a parameter whose
    last partition is padding (fewer elements than ranks × partition size) and fails; the padding
    is left as it is here."""
    if not param.requires_grad:
        return
    part, _ = zero._get_fp32_opt_state_partition(param, release_swap_buffers=False, optim_state_key=key)
    flat = value.flatten()
    start = part.numel() * zero._get_param_partition_rank(param)
    count = max(0, min(part.numel(), flat.numel() - start))
    if count:
        part.data[:count].copy_(flat[start : start + count].to(part.device, part.dtype))
