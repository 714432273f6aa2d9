"""The shared training loop: a short sequence of named phases over a :class:`Task`.

``run`` = prepare -> resume -> (train_step -> log -> evaluate -> save)* -> finish. Data order is a
pure function of (seed, epoch) and the position is checkpointed, so a resumed run continues with
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch

from training.config import config_to_dict
from training.data.batching import plan_epoch
from training.engine.distributed import (
    all_reduce_mean,
    barrier,
    init_deepspeed_distributed,
    is_main_process,
    rank,
    world_size,
)
from training.engine.loop import TRAINER_STATE, CheckpointedRun, crash_if_asked
from training.engine.reporting import ProgressBar, TensorBoardLogger, write_json_atomic, write_summary
from training.engine.rng import seed_everything
from training.engine.runtime import configure_torch, resolve_device, use_bf16
from training.engine.serialization import load_state
from training.engine.task import Batch, Task
from training.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class Position:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch in progress
    micro: int = 0  # micro-batches of this epoch already consumed


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
    }


class Trainer(CheckpointedRun):
    saved_at: int  # the step of the last checkpoint and evaluation (set when training starts)
    evaluated_at: int

    def __init__(self, task: Task) -> None:
        self.task = task
        self.config = task.config
        self.stage = task.stage
        self.pos = Position()
        self.init_run(main=is_main_process())

    @property
    def step(self) -> int:
        return self.pos.step

    # ----------------------------------------------------------------- phases
    def prepare(self) -> None:
        self.device = resolve_device(self.config)  # here, so a bad device is a failed run, not a crash
        self.bf16 = use_bf16(self.config, self.device)
        configure_torch(self.config, self.device)  # selects this rank's GPU before NCCL starts
        if self.config.zero_stage is not None:
            init_deepspeed_distributed()
        if self.device.type == "cuda":  # refuse a run that cannot fit before loading it
            from training.planning.check import ensure_fits

            memory = torch.cuda.get_device_properties(self.device).total_memory
            ensure_fits(self.stage, config_to_dict(self.config), gpus=world_size(), gpu_memory=memory)
        seed_everything(self.config.seed)
        if is_main_process():
            write_json_atomic(self.output_dir / "run.json", config_to_dict(self.config))
        data_metrics = self.task.setup()
        self.events.metric(0, data_metrics)
        self.history.update(data_metrics)
        model = self.task.build_model()
        if self.config.gradient_checkpointing:
            cast(Any, model).gradient_checkpointing_enable()  # HF models and ScoreModel have it
        self.steps_per_epoch = self._steps_per_epoch(len(self.task.train_dataset.lengths))
        self.total_steps = self.steps_per_epoch * self.config.epochs
        if self.config.max_steps > 0:
            self.total_steps = min(self.total_steps, self.config.max_steps)
        self.backend = self._make_backend(model)
        self.tensorboard = TensorBoardLogger(self.output_dir / "tensorboard", enabled=is_main_process())

    def _steps_per_epoch(self, n_rows: int) -> int:
        """Optimizer steps per epoch: this rank's batches // accumulation (a partial group is dropped)."""
        cfg = self.config
        batches = -(-n_rows // cfg.per_device_train_batch_size)
        if world_size() > 1:
            batches //= world_size()
        steps = batches // cfg.gradient_accumulation_steps
        if steps == 0:
            raise ConfigError(
                "the training data is smaller than one optimizer step "
                "(per_device_train_batch_size x gradient_accumulation_steps x ranks)"
            )
        return steps

    def _make_backend(self, model: torch.nn.Module) -> Any:
        from training.engine.backends import DeepSpeedBackend, TorchBackend

        cls = TorchBackend if self.config.zero_stage is None else DeepSpeedBackend
        return cls(model, self.config, self.total_steps, self.device, self.bf16)

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        self.backend.load_state(path)
        state: dict[str, Any] = load_state(path, TRAINER_STATE)
        self.pos = Position(**state["position"])
        return state

    def micro_batches(self) -> Iterator[tuple[int, Batch]]:
        """(epoch, batch) from the current position on, ``accumulation`` micro-batches per step."""
        cfg, accum = self.config, self.config.gradient_accumulation_steps
        while self.pos.epoch < cfg.epochs:
            plan = plan_epoch(
                self.task.train_dataset.lengths,
                cfg.per_device_train_batch_size,
                seed=cfg.seed,
                epoch=self.pos.epoch,
                group_by_length=cfg.group_by_length,
                group_size=cfg.length_group_size,
                rank=rank(),
                world_size=world_size(),
            )
            usable = self.steps_per_epoch * accum
            for index in plan[self.pos.micro : usable]:
                self.pos.micro += 1
                yield self.pos.epoch, self.task.collate([self.task.train_dataset[i] for i in index])
            self.pos.epoch += 1
            self.pos.micro = 0

    def train_step(self, micro: list[Batch]) -> dict[str, float]:
        model = self.backend.forward_model
        model.train()
        sums: dict[str, torch.Tensor] = {}
        for batch in micro:
            with self.backend.autocast():
                loss, metrics = self.task.loss(model, _to_device(batch, self.device))
            self.backend.backward(loss)
            for key, value in {"loss": loss.detach(), **metrics}.items():
                sums[key] = sums.get(key, 0.0) + value.float() / len(micro)
        grad_norm = self.backend.step()
        out = {f"train/{k}": float(all_reduce_mean(v)) for k, v in sums.items()}
        out["train/lr"] = self.backend.current_lr()
        if grad_norm is not None:
            out["train/grad_norm"] = grad_norm
        return out

    def evaluate(self) -> dict[str, float]:
        if self.task.eval_dataset is None:
            return {}
        lengths = self.task.eval_dataset.lengths
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])[rank() :: world_size()]
        size = self.config.per_device_eval_batch_size
        batches = (
            self.task.collate([self.task.eval_dataset[i] for i in order[s : s + size]])
            for s in range(0, len(order), size)
        )
        model = self.backend.forward_model
        model.eval()
        # Ranks may hold different numbers of eval batches: under ZeRO-3 the model runs on local
        # (gathered) weights here, so no forward waits for a rank that has finished.
        local = getattr(self.backend, "gathered_for_generation", contextlib.nullcontext)
        with torch.no_grad(), self.backend.autocast(), local():
            metrics = self.task.evaluate(model, (_to_device(b, self.device) for b in batches))
        return {f"eval/{k}": v for k, v in metrics.items()}

    def _resume_position(self) -> Position:
        """Where a run restarted from now continues: at an epoch's end, the next epoch's start."""
        pos = Position(**asdict(self.pos))
        if pos.micro >= self.steps_per_epoch * self.config.gradient_accumulation_steps:
            pos.epoch, pos.micro = pos.epoch + 1, 0
        return pos

    def save(self) -> None:
        if is_main_process():
            self.write_checkpoint(asdict(self._resume_position()), self.backend.save_state)
        else:
            self.backend.save_state(Path(os.devnull))  # joins the collectives of the state gather
        barrier()

    # ------------------------------------------------------------------ loop
    def _due(self, every: int, epoch_end: bool) -> bool:
        return (every > 0 and self.pos.step % every == 0) or (every == 0 and epoch_end)

    def _log(self, window: list[dict[str, float]], tokens: int, started: float) -> dict[str, float]:
        keys = {k for m in window for k in m}
        metrics = {k: sum(m[k] for m in window if k in m) / sum(k in m for m in window) for k in sorted(keys)}
        elapsed = max(time.perf_counter() - started, 1e-9)
        metrics["train/tokens_per_s"] = tokens * world_size() / elapsed
        metrics["train/epoch"] = self.pos.epoch + self.pos.micro / max(
            1, self.steps_per_epoch * self.config.gradient_accumulation_steps
        )
        self.events.metric(self.pos.step, metrics)
        self.tensorboard.log(self.pos.step, metrics)
        self.history.update(metrics)
        return metrics

    def _after_step(self, epoch_end: bool, last: bool) -> None:
        cfg = self.config
        if self._due(cfg.eval_steps, epoch_end) or last:
            metrics = self.evaluate()
            if metrics:
                self.events.metric(self.pos.step, metrics)
                self.tensorboard.log(self.pos.step, metrics)
                self.history.update(metrics)
                self.evaluated_at = self.pos.step
        # The final model is exported by finish(); a full checkpoint (optimizer included) at the
        # last step is written only when the save schedule asks for one.
        if self._due(cfg.save_steps, epoch_end) and self.pos.step != self.saved_at:
            self.save()
            self.saved_at = self.pos.step
        crash_if_asked(self.pos.step - 1, self.pos.step)

    def _progress(self, run_started: float) -> None:
        done = max(1, self.pos.step)
        eta = (time.perf_counter() - run_started) / done * (self.total_steps - self.pos.step)
        self.events.progress(self.pos.step, self.total_steps, self.history["train/epoch"], eta)

    def train(self) -> None:
        accum, cfg = self.config.gradient_accumulation_steps, self.config
        bar = ProgressBar(self.total_steps, self.pos.step, self.task.stage, enabled=is_main_process())
        self.saved_at, self.evaluated_at = self.pos.step, -1
        window: list[dict[str, float]] = []
        tokens, started, run_started = 0, time.perf_counter(), time.perf_counter()
        micro: list[Batch] = []
        for _, batch in self.micro_batches():
            if self.pos.step >= self.total_steps:
                break
            micro.append(batch)
            tokens += self.task.count_tokens(batch)
            if len(micro) < accum:
                continue
            window.append(self.train_step(micro))
            micro = []
            self.pos.step += 1
            epoch_end = self.pos.micro == self.steps_per_epoch * accum
            last = self.pos.step >= self.total_steps
            logged = self.pos.step % max(1, cfg.logging_steps) == 0 or last
            if logged:
                bar.update(self.pos.step, self._log(window, tokens, started))
                window, tokens = [], 0
                self._progress(run_started)
            self._after_step(epoch_end, last)
            if logged:  # throughput windows leave out evaluation and checkpoint time
                started = time.perf_counter()
        bar.close()

    def finish(self) -> dict[str, float]:
        """Final evaluation, model export and summary.json; returns the summary metrics."""
        if self.task.eval_dataset is not None and self.evaluated_at != self.pos.step:
            self.history.update(self.evaluate())
        summary = {k: v for k, v in self.history.items() if k.split("/")[0] in ("train", "eval", "data")}
        summary["train/steps"] = float(self.pos.step)
        state_dict = self.backend.full_state_dict()
        if is_main_process():
            self.task.export(self.backend.unwrap(), self.output_dir, state_dict)
            self.task.final_report(self.output_dir)
            write_summary(self.output_dir, summary)
            self.events.checkpoint(self.pos.step, ".", final=True)
        barrier()
        return summary
