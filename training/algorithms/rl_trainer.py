"""The policy-training loop shared by PPO, reward shaping and PPO-Lag (docs/design/method.md §5.7, §6).

``run`` = prepare -> resume -> per prompt batch: rollout -> score -> compute_advantages ->
per micro-batch (``update_iters`` times): update_multiplier -> update_actor (+ PTX) ->
update_critics -> log -> evaluate -> save; finally export the actor. One micro-batch is one
optimizer step of each trained network (GA = 1), in the reference's order: actor, reward critic,
cost critic (§6.4). What differs between the algorithms lives in :mod:`.objectives`.

A checkpoint (after a prompt batch) holds the three trained networks with their optimizers and
schedulers, λ and the episode-cost window, the prompt and PTX positions and every RNG, so a resumed
run continues the exact trajectory of an uninterrupted one.

Several ranks (``zero_stage`` set, launched by ``deepspeed`` or ``torchrun``): a prompt batch is
one *global* batch of ``per_device_prompt_batch_size × world size`` prompts, drawn from the same
seeded plan whatever the world size, and rank r rolls out its r-th slice; advantages are per rank;
the episode costs are gathered so λ's window is global and λ is broadcast from rank 0; metrics are
reduced over ranks; every rank writes its part of a checkpoint (its RNG) and the checkpoint is
published only after all have (:meth:`CheckpointManager.save_all_ranks`).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from transformers import PreTrainedModel

from training.algorithms.objectives import RewardObjective
from training.algorithms.policy_models import load_policy_models
from training.algorithms.rl_data import PromptSource, PTXSource
from training.algorithms.rl_metrics import batch_metrics, mean_metrics
from training.algorithms.rl_phases import PolicyPhases
from training.algorithms.rollout import SamplingSettings
from training.config import RLConfig, config_to_dict
from training.engine.checkpoint import RANK_DONE, rank_dir
from training.engine.distributed import (
    barrier,
    init_deepspeed_distributed,
    is_main_process,
    rank,
    reduce_metrics,
    world_size,
)
from training.engine.loop import TRAINER_STATE, CheckpointedRun, crash_if_asked
from training.engine.reporting import ProgressBar, TensorBoardLogger, write_json_atomic, write_summary
from training.engine.rng import capture_rng, seed_everything
from training.engine.runtime import configure_torch, resolve_device, use_bf16
from training.engine.serialization import load_state, save_state
from training.errors import ConfigError
from training.evaluation.generation import eos_ids
from training.models import load_tokenizer

logger = logging.getLogger(__name__)
RANK_STATE = "rank_state"
KILL_ENV = "TRAINING_TEST_KILL_RANK_IN_SAVE"  # test hook "RANK:STEP": that rank SIGKILLs itself mid-save


@dataclass
class RLPosition:
    epoch: int = 0  # epoch in progress
    batch: int = 0  # prompt batches of this epoch already consumed
    global_step: int = 0  # optimizer steps (micro-batch updates) done


def _crossed(every: int, before: int, after: int) -> bool:
    return every > 0 and before // every != after // every


def _kill_if_asked(step: int, own: Path) -> None:
    """Die like ``kill -9`` on the rank and step :data:`KILL_ENV` names, mid-checkpoint, once every
    other rank has finished its part (up to a minute): the checkpoint then lacks exactly this rank's
    part. Dying at once could also take the others down before they finish (the launcher stops
    them), which would test less."""
    value = os.environ.get(KILL_ENV)
    if value and value == f"{rank()}:{step}":
        others = [rank_dir(own.parent, r) / RANK_DONE for r in range(world_size()) if r != rank()]
        deadline = time.monotonic() + 60
        while not all(done.is_file() for done in others) and time.monotonic() < deadline:
            time.sleep(0.05)
        logger.warning("%s=%s: SIGKILL mid-checkpoint for a resume test", KILL_ENV, value)
        os.kill(os.getpid(), signal.SIGKILL)


class PolicyTrainer(PolicyPhases, CheckpointedRun):
    def __init__(self, config: RLConfig, objective: RewardObjective, stage: str) -> None:
        self.config, self.objective, self.stage = config, objective, stage
        self.pos = RLPosition()
        self.init_run(main=is_main_process())
        self.timings: dict[str, float] = {}
        self.sampling = SamplingSettings(config.max_new_tokens, config.temperature, config.top_p)

    @property
    def step(self) -> int:
        return self.pos.global_step

    @property
    def global_step(self) -> int:
        return self.pos.global_step

    @global_step.setter
    def global_step(self, value: int) -> None:
        self.pos.global_step = value

    # ------------------------------------------------------------- lifecycle
    def prepare(self) -> None:
        """Threads, seeds, prompts, the step plan, the networks and the PTX data."""
        cfg = self.config
        self.device = resolve_device(cfg)  # here: a bad device is a failed run
        self.bf16 = use_bf16(cfg, self.device)
        configure_torch(cfg, self.device)  # selects this rank's GPU before NCCL starts
        if cfg.zero_stage is not None:
            init_deepspeed_distributed()
        elif world_size() > 1:
            raise ConfigError("several processes need DeepSpeed: set zero_stage (0-3)")
        if self.device.type == "cuda":  # refuse before loading six networks, not at the first OOM
            from training.planning.check import ensure_fits

            memory = torch.cuda.get_device_properties(self.device).total_memory
            ensure_fits(self.stage, config_to_dict(cfg), gpus=world_size(), gpu_memory=memory)
        seed_everything(cfg.seed)
        if is_main_process():
            write_json_atomic(self.output_dir / "run.json", config_to_dict(cfg))
        tokenizer = load_tokenizer(
            cfg.model_name_or_path, padding_side="left", trust_remote_code=cfg.trust_remote_code
        )
        self.prompts = PromptSource(cfg.train_data, tokenizer, cfg.max_prompt_length)
        self.eval_prompts = (
            PromptSource(cfg.eval_data, tokenizer, cfg.max_prompt_length) if cfg.eval_data else None
        )
        self._plan_steps()
        self.models = load_policy_models(
            cfg,
            cost=self.objective.uses_cost_model,
            cost_critic=self.objective.uses_cost_critic,
            device=self.device,
            bf16=self.bf16,
            total_steps=self.total_steps,
        )
        self.ptx = None
        if cfg.ptx_data and cfg.ptx_coeff > 0:
            self.ptx = PTXSource(
                cfg.ptx_data,
                tokenizer,
                cfg.max_prompt_length + cfg.max_new_tokens,
                cfg.per_device_train_batch_size,
                cfg.seed + rank(),  # each rank its own PTX rows
            )
        self.eos = eos_ids(self.models.tokenizer, self.models.actor.model)
        data = {
            "data/train_prompts": float(len(self.prompts)),
            "data/dropped_long_prompts": float(self.prompts.dropped),
        }
        self.events.metric(0, data)
        self.history.update(data)
        self.tensorboard = TensorBoardLogger(self.output_dir / "tensorboard", enabled=is_main_process())

    def _plan_steps(self) -> None:
        """Optimizer steps per epoch: one per micro-batch of every prompt batch, ``update_iters`` times."""
        cfg = self.config
        plan = self._epoch_plan(0)
        if not plan:
            raise ConfigError(
                f"fewer prompts ({len(self.prompts)}) than one global prompt batch "
                f"(per_device_prompt_batch_size x {world_size()} ranks)"
            )
        self.batches_fraction = 1.0 / len(plan)
        self.steps_per_epoch = cfg.update_iters * sum(
            math.ceil(len(batch) / cfg.per_device_train_batch_size) for batch in plan
        )
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps > 0:
            self.total_steps = min(self.total_steps, cfg.max_steps)

    def _epoch_plan(self, epoch: int) -> list[list[int]]:
        """This rank's slice of every global prompt batch of ``epoch``. The global batches come
        from one seeded plan of ``per_device x world size`` prompts, the same at any world size
        for the same global size; with several ranks a short last batch is dropped, so that every
        rank runs the same number of steps (their collectives must pair up)."""
        cfg, ranks = self.config, world_size()
        per_rank = cfg.per_device_prompt_batch_size
        plan = self.prompts.epoch_plan(per_rank * ranks, seed=cfg.seed, epoch=epoch)
        if ranks == 1:
            return plan
        me = rank()
        return [
            batch[me * per_rank : (me + 1) * per_rank] for batch in plan if len(batch) == per_rank * ranks
        ]

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        self.models.load_state(path)
        state: dict[str, Any] = load_state(path, TRAINER_STATE)
        own = path / f"rank-{rank():05d}"
        if world_size() > 1 or own.is_dir():
            if not own.is_dir():
                raise ConfigError(
                    f"checkpoint {path} has no part of rank {rank()}: "
                    "resume with the world size that wrote it"
                )
            rank_state = load_state(own, RANK_STATE)
            state["rng"] = rank_state["rng"]
            if self.ptx is not None and rank_state.get("ptx"):
                self.ptx.load_state_dict(rank_state["ptx"])
            return self._restore(state, ptx=False)
        return self._restore(state, ptx=True)

    def _restore(self, state: dict[str, Any], *, ptx: bool) -> dict[str, Any]:
        self.pos = RLPosition(**state["position"])
        self.objective.load_state_dict(state["objective"])
        if ptx and self.ptx is not None and state.get("ptx"):
            self.ptx.load_state_dict(state["ptx"])
        return state

    def save(self) -> None:
        if world_size() == 1:
            self.write_checkpoint(
                asdict(self.pos),
                self.models.save_state,
                objective=self.objective.state_dict(),
                ptx=self.ptx.state_dict() if self.ptx else {},
            )
            return
        self._save_all_ranks()

    def _save_all_ranks(self) -> None:
        """Every rank writes its RNG, PTX position and its own copy of λ and the window; rank 0 the
        networks (gathered from all ranks, so every rank joins) and the shared trainer state;
        published once all are done."""
        state = {
            "position": asdict(self.pos),
            "history": self.history,
            "objective": self.objective.state_dict(),
            "config": config_to_dict(self.config),
        }

        def write_main(tmp: Path) -> None:
            if is_main_process():
                self.models.save_state(tmp)
                save_state(tmp, TRAINER_STATE, state)
            else:
                for backend in self.models.trained().values():
                    backend.save_state(Path(os.devnull))  # joins the gathers; rank 0 writes

        def write_rank(own: Path) -> None:
            rank_state = {
                "rng": capture_rng(),
                "ptx": self.ptx.state_dict() if self.ptx else {},
                "objective": self.objective.state_dict(),  # this rank's own λ and window, for audits
            }
            save_state(own, RANK_STATE, rank_state)
            _kill_if_asked(self.pos.global_step, own)

        path = self.checkpoints.save_all_ranks(
            self.pos.global_step,
            write_main,
            write_rank,
            rank=rank(),
            world_size=world_size(),
            barrier=barrier,
        )
        self.events.checkpoint(self.pos.global_step, str(path.relative_to(self.output_dir)))

    # ------------------------------------------------------------------ loop
    def prompt_batches(self) -> Iterator[tuple[list[int], bool]]:
        """(prompt indices, last batch of its epoch) from the current position on."""
        cfg = self.config
        while self.pos.epoch < cfg.epochs:
            plan = self._epoch_plan(self.pos.epoch)
            while self.pos.batch < len(plan):
                self.pos.batch += 1
                yield plan[self.pos.batch - 1], self.pos.batch == len(plan)
            self.pos.epoch, self.pos.batch = self.pos.epoch + 1, 0

    def train_on_batch(self, prompt_indices: list[int]) -> dict[str, float]:
        """One rollout batch: sample, score, advantages, then ``update_iters`` passes of updates."""
        experiences = self.score(self.rollout(prompt_indices))
        self.compute_advantages(experiences)
        step_metrics = []
        for _ in range(self.config.update_iters):
            for exp in experiences:
                if self.pos.global_step >= self.total_steps:
                    break
                step_metrics.append(self.rl_step(exp))
        metrics = {**batch_metrics(experiences), **mean_metrics(step_metrics)}
        if self.device.type == "cuda":  # the fullest GPU is what decides whether a run fits
            metrics["train/peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        metrics = reduce_metrics(
            metrics,
            sums=("train/tokens",),
            maxima=("train/max_generated_length", "train/peak_gpu_memory_gib"),
        )
        return {**metrics, **self.objective.metrics()}  # the objective's state is already global

    def _log(self, metrics: dict[str, float], started: float) -> None:
        elapsed = max(time.perf_counter() - started, 1e-9)
        metrics["train/tokens_per_s"] = metrics.get("train/tokens", 0.0) / elapsed
        metrics["train/epoch"] = self.pos.epoch + self.pos.batch * self.batches_fraction
        metrics.update({f"timing/{k}": v for k, v in self.timings.items()})
        self.events.metric(self.pos.global_step, metrics)
        self.tensorboard.log(self.pos.global_step, metrics)
        self.history.update(metrics)

    def _progress(self, bar: ProgressBar, metrics: dict[str, float], first_step: int, started: float) -> None:
        done = self.pos.global_step
        bar.update(
            done, {k: metrics[k] for k in ("train/reward", "train/cost", "train/lambda") if k in metrics}
        )
        eta = (time.perf_counter() - started) / max(1, done - first_step) * (self.total_steps - done)
        self.events.progress(done, self.total_steps, self.history["train/epoch"], eta)

    def _after_batch(self, before: int, epoch_end: bool, last: bool) -> None:
        cfg, step = self.config, self.pos.global_step
        if (_crossed(cfg.eval_steps, before, step) or (cfg.eval_steps == 0 and epoch_end) or last) and (
            metrics := self.evaluate()
        ):
            self.events.metric(step, metrics)
            self.tensorboard.log(step, metrics)
            self.history.update(metrics)
        if _crossed(cfg.save_steps, before, step) or (cfg.save_steps == 0 and epoch_end) or last:
            self.save()
        crash_if_asked(before, step)

    def train(self, stop_after_steps: int | None = None) -> None:
        """Run to ``total_steps`` (or until ``stop_after_steps``, a test hook that stops like a kill
        right after the checkpoint of that step)."""
        bar = ProgressBar(self.total_steps, self.pos.global_step, self.stage, enabled=is_main_process())
        first_step, run_started = self.pos.global_step, time.perf_counter()
        for batches, (prompt_indices, epoch_end) in enumerate(self.prompt_batches(), 1):
            if self.pos.global_step >= self.total_steps:
                break
            before, started, self.timings = self.pos.global_step, time.perf_counter(), {}
            metrics = self.train_on_batch(prompt_indices)
            last = self.pos.global_step >= self.total_steps
            if batches % self.config.logging_steps == 0 or last:
                self._log(metrics, started)
                self._progress(bar, metrics, first_step, run_started)
            self._after_batch(before, epoch_end, last)
            if stop_after_steps is not None and self.pos.global_step >= stop_after_steps:
                break
        bar.close()

    def finish(self) -> dict[str, float]:
        """Export the actor (HF layout + tokenizer) and write summary.json (§2.3: only the actor)."""
        actor = self.models.actor
        state_dict = actor.full_state_dict()  # a gather under ZeRO-3: every rank joins
        summary = {k: v for k, v in self.history.items() if k.split("/")[0] in ("train", "eval", "data")}
        summary["train/steps"] = float(self.pos.global_step)
        if is_main_process():
            cast(PreTrainedModel, actor.model).save_pretrained(self.output_dir, state_dict=state_dict)
            self.models.tokenizer.save_pretrained(self.output_dir)
            write_summary(self.output_dir, summary)
            self.events.checkpoint(self.pos.global_step, ".", final=True)
        barrier()
        return summary
