"""The policy-training loop shared by PPO, reward shaping and PPO-Lag (SAFE_RLHF_SPEC.md §5.7, §6).

``run`` = prepare -> resume -> per prompt batch: rollout -> score -> compute_advantages ->
per micro-batch (``update_iters`` times): update_multiplier -> update_actor (+ PTX) ->
update_critics -> log -> evaluate -> save; finally export the actor. One micro-batch is one
optimizer step of each trained network (GA = 1), in the reference's order: actor, reward critic,
cost critic (§6.4). What differs between the algorithms lives in :mod:`.objectives`.

A checkpoint (after a prompt batch) holds the three trained networks with their optimizers and
schedulers, λ and the episode-cost window, the prompt and PTX positions and every RNG, so a resumed
run continues the exact trajectory of an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from training.algorithms.experience import Experience, score_rollout, token_values
from training.algorithms.losses import causal_lm_loss
from training.algorithms.objectives import RewardObjective
from training.algorithms.policy_models import PolicyModels, load_policy_models
from training.algorithms.ppo_losses import actor_loss, clip_fraction, critic_loss
from training.algorithms.rl_data import PromptSource, PTXSource
from training.algorithms.rl_metrics import batch_metrics, mean_metrics
from training.algorithms.rollout import Rollout, SamplingSettings, generate, response_log_probs
from training.config import RLConfig, config_to_dict
from training.engine.checkpoint import CheckpointManager
from training.engine.reporting import ProgressBar, TensorBoardLogger, write_json_atomic, write_summary
from training.engine.rng import capture_rng, restore_rng, seed_everything
from training.engine.runtime import configure_torch, resolve_device, use_bf16
from training.engine.serialization import load_state, save_state
from training.engine.trainer import CRASH_ENV
from training.errors import ConfigError
from training.evaluation.generation import eos_ids, sample_responses
from training.evaluation.judging import judge_toyworld, mean, score_metrics
from training.events import EventWriter

logger = logging.getLogger(__name__)


@dataclass
class RLPosition:
    epoch: int = 0  # epoch in progress
    batch: int = 0  # prompt batches of this epoch already consumed
    global_step: int = 0  # optimizer steps (micro-batch updates) done


def _crossed(every: int, before: int, after: int) -> bool:
    return every > 0 and before // every != after // every


class PolicyTrainer:
    def __init__(self, config: RLConfig, objective: RewardObjective, stage: str) -> None:
        self.config, self.objective, self.stage = config, objective, stage
        self.output_dir = Path(config.output_dir)
        self.device = resolve_device(config)  # type: ignore[arg-type]
        self.bf16 = use_bf16(config, self.device)  # type: ignore[arg-type]
        self.events = EventWriter(self.output_dir, stage)
        self.checkpoints = CheckpointManager(self.output_dir / "checkpoints", keep=config.save_total_limit)
        self.pos = RLPosition()
        self.history: dict[str, float] = {}
        self.timings: dict[str, float] = {}
        self.sampling = SamplingSettings(config.max_new_tokens, config.temperature, config.top_p)

    # ----------------------------------------------------------------- phases
    def prepare(self) -> None:
        cfg = self.config
        configure_torch(cfg, self.device)  # type: ignore[arg-type]
        seed_everything(cfg.seed)
        write_json_atomic(self.output_dir / "run.json", config_to_dict(cfg))
        from training.models import load_tokenizer

        tokenizer = load_tokenizer(
            cfg.model_name_or_path, padding_side="left", trust_remote_code=cfg.trust_remote_code
        )
        self.prompts = PromptSource(cfg.train_data, tokenizer, cfg.max_prompt_length)
        self.eval_prompts = (
            PromptSource(cfg.eval_data, tokenizer, cfg.max_prompt_length) if cfg.eval_data else None
        )
        self.steps_per_epoch = cfg.update_iters * sum(
            math.ceil(len(b) / cfg.per_device_train_batch_size)
            for b in self.prompts.epoch_plan(cfg.per_device_prompt_batch_size, seed=cfg.seed, epoch=0)
        )
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps > 0:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.models: PolicyModels = load_policy_models(
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
                cfg.seed,
            )
        self.eos = eos_ids(self.models.tokenizer, self.models.actor.model)
        data = {
            "data/train_prompts": float(len(self.prompts)),
            "data/dropped_long_prompts": float(self.prompts.dropped),
        }
        self.events.metric(0, data)
        self.history.update(data)
        self.tensorboard = TensorBoardLogger(self.output_dir / "tensorboard")

    def resume(self) -> None:
        choice = self.config.resume
        if choice == "never":
            return
        self.checkpoints.clean_stale()
        path = self.checkpoints.latest() if choice == "auto" else Path(choice)
        if path is None:
            return
        if not (path / "COMPLETE").is_file():
            raise ConfigError(f"resume checkpoint {path} does not exist or is incomplete")
        self.models.load_state(path)
        state = load_state(path, "trainer_state")
        self.pos = RLPosition(**state["position"])
        self.history.update(state["history"])
        self.objective.load_state_dict(state["objective"])
        if self.ptx is not None and state.get("ptx"):
            self.ptx.load_state_dict(state["ptx"])
        restore_rng(state["rng"])
        logger.info("resumed from %s at step %d", path, self.pos.global_step)
        self.events.status("resumed", f"resumed from {path.name}", step=self.pos.global_step)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _timed(self, phase: str, started: float) -> float:
        self._sync()
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - started
        return now

    def rollout(self, prompt_indices: list[int]) -> list[Rollout]:
        """Sample responses for the whole prompt batch at once (one KV-cache decode for all rows, in
        eval mode), then split it into the update micro-batches (§5.7), each trimmed of padding."""
        started, m = time.perf_counter(), self.models
        m.actor.model.eval()
        batch = self.prompts.batch(prompt_indices)
        with m.actor.autocast():
            full = generate(
                m.sampling_policy(),
                batch["input_ids"].to(self.device),
                batch["attention_mask"].to(self.device),
                self.sampling,
                self.eos,
                m.tokenizer.pad_token_id,
            )
        self._timed("generate", started)
        return full.split(self.config.per_device_train_batch_size)

    def score(self, rollouts: list[Rollout]) -> list[Experience]:
        """Reference log-probs, RM/CM end scores and critic values: one forward per network."""
        started, m = time.perf_counter(), self.models
        for backend in (m.reward_critic, m.cost_critic):
            if backend is not None:
                backend.model.eval()
        with m.actor.autocast():
            experiences = [
                score_rollout(
                    r,
                    m.reference,
                    m.reward_model,
                    m.reward_critic.model,
                    m.cost_model,
                    None if m.cost_critic is None else m.cost_critic.model,
                )
                for r in rollouts
            ]
        self._timed("score", started)
        return experiences

    def compute_advantages(self, experiences: list[Experience]) -> None:
        started = time.perf_counter()
        self.objective.record(experiences)
        for exp in experiences:
            self.objective.compute_advantages(exp)
        self._timed("advantages", started)

    def update_multiplier(self) -> dict[str, float]:
        started = time.perf_counter()
        metrics = self.objective.update_multiplier(self.pos.global_step)
        self._timed("lambda", started)
        return metrics

    def update_actor(self, exp: Experience) -> dict[str, float]:
        """Clipped PPO step on the objective's advantage; with PTX, the RL and PTX gradients are
        accumulated into one step at ½ each, as the reference's doubled accumulation does (§5.6)."""
        started, actor, cfg = time.perf_counter(), self.models.actor, self.config
        actor.model.train()
        advantages = self.objective.actor_advantages(exp)  # (B, R)
        scale = 0.5 if self.ptx is not None else 1.0
        with actor.autocast():
            roll = exp.rollout
            log_probs = response_log_probs(
                actor.model, roll.input_ids, roll.attention_mask, roll.prompt_width
            )
            loss = actor_loss(log_probs, exp.log_probs, advantages, exp.mask, cfg.clip_range_ratio)
        (scale * loss).backward()
        metrics = {
            "train/actor_loss": loss.item(),
            "train/clip_fraction": clip_fraction(
                log_probs.detach(), exp.log_probs, exp.mask, cfg.clip_range_ratio
            ),
        }
        if self.ptx is not None:
            batch = {k: v.to(self.device) for k, v in self.ptx.next_batch().items()}
            with actor.autocast():
                logits = actor.model(input_ids=batch["input_ids"], use_cache=False).logits  # right-padded
                ptx_loss = causal_lm_loss(logits, batch["labels"])
            (scale * cfg.ptx_coeff * ptx_loss).backward()
            metrics["train/ptx_loss"] = ptx_loss.item()
        metrics["train/actor_grad_norm"] = actor.step() or 0.0
        metrics["train/actor_lr"] = actor.current_lr()
        self._timed("actor", started)
        return metrics

    def _critic_step(
        self, name: str, exp: Experience, old: torch.Tensor, returns: torch.Tensor
    ) -> dict[str, float]:
        backend = getattr(self.models, name)
        backend.model.train()
        roll = exp.rollout
        with backend.autocast():
            values = token_values(backend.model, roll.input_ids, roll.attention_mask, roll.prompt_width)
            loss = critic_loss(values, old, returns, exp.mask, self.config.clip_range_value)
        loss.backward()
        grad_norm = backend.step()
        return {
            f"train/{name}_loss": loss.item(),
            f"train/{name}_lr": backend.current_lr(),
            f"train/{name}_grad_norm": grad_norm or 0.0,
        }

    def update_critics(self, exp: Experience) -> dict[str, float]:
        """Reward critic, then cost critic: clipped value loss against their own returns (§5.5)."""
        started = time.perf_counter()
        metrics = self._critic_step("reward_critic", exp, exp.reward_values, exp.reward_returns)
        if self.models.cost_critic is not None:
            metrics.update(self._critic_step("cost_critic", exp, exp.cost_values, exp.cost_returns))
        self._timed("critics", started)
        return metrics

    def rl_step(self, exp: Experience) -> dict[str, float]:
        """One optimizer step of every trained network on one micro-batch (§5.5, §6.5)."""
        metrics = self.update_multiplier()
        metrics.update(self.update_actor(exp))
        metrics.update(self.update_critics(exp))
        self.pos.global_step += 1
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Sample answers to the eval prompts: mean RM score, CM cost and unsafe ratio (§5.7), and
        with ``ground_truth=toyworld`` the judges' true helpfulness and unsafe rates."""
        if self.eval_prompts is None:
            return {}
        m = self.models
        with m.actor.autocast():
            out = sample_responses(
                m.sampling_policy(),
                m.tokenizer,
                self.eval_prompts,
                self.sampling,
                self.config.per_device_eval_batch_size,
                self.device,
                reward_model=m.reward_model,
                cost_model=m.cost_model,
            )
        metrics = {f"eval/{k}": v for k, v in score_metrics(out.rewards, out.costs).items()}
        metrics["eval/mean_generated_length"] = mean(out.lengths)
        if self.config.ground_truth == "toyworld":
            verdicts = judge_toyworld([self.eval_prompts.prompts[i] for i in out.indices], out.texts)
            metrics.update({f"eval/{k}": v for k, v in verdicts.metrics().items()})
        return metrics

    def save(self) -> None:
        state = {
            "position": asdict(self.pos),
            "history": self.history,
            "rng": capture_rng(),
            "objective": self.objective.state_dict(),
            "ptx": self.ptx.state_dict() if self.ptx else {},
            "config": config_to_dict(self.config),
        }

        def write(tmp: Path) -> None:
            self.models.save_state(tmp)
            save_state(tmp, "trainer_state", state)

        path = self.checkpoints.save(self.pos.global_step, write)
        self.events.checkpoint(self.pos.global_step, str(path.relative_to(self.output_dir)))

    # ------------------------------------------------------------------ loop
    def prompt_batches(self):
        """(epoch_end, prompt indices) from the current position on."""
        cfg = self.config
        while self.pos.epoch < cfg.epochs:
            plan = self.prompts.epoch_plan(
                cfg.per_device_prompt_batch_size, seed=cfg.seed, epoch=self.pos.epoch
            )
            while self.pos.batch < len(plan):
                self.pos.batch += 1
                yield plan[self.pos.batch - 1]
            self.pos.epoch, self.pos.batch = self.pos.epoch + 1, 0

    def train_on_batch(self, prompt_indices: list[int]) -> dict[str, float]:
        experiences = self.score(self.rollout(prompt_indices))
        self.compute_advantages(experiences)
        step_metrics = []
        for _ in range(self.config.update_iters):
            for exp in experiences:
                if self.pos.global_step >= self.total_steps:
                    break
                step_metrics.append(self.rl_step(exp))
        return {**batch_metrics(experiences), **mean_metrics(step_metrics), **self.objective.metrics()}

    def _log(self, metrics: dict[str, float], tokens: int, started: float) -> None:
        elapsed = max(time.perf_counter() - started, 1e-9)
        metrics["train/tokens_per_s"] = tokens / elapsed
        metrics["train/epoch"] = self.pos.epoch + self.pos.batch / max(1, self.steps_per_epoch)
        metrics.update({f"timing/{k}": v for k, v in self.timings.items()})
        self.events.metric(self.pos.global_step, metrics)
        self.tensorboard.log(self.pos.global_step, metrics)
        self.history.update(metrics)

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
        if os.environ.get(CRASH_ENV) and int(os.environ[CRASH_ENV]) <= step:
            logger.warning("%s=%s: exiting hard for a resume test", CRASH_ENV, os.environ[CRASH_ENV])
            os._exit(75)

    def train(self, stop_after_steps: int | None = None) -> None:
        """Run to ``total_steps`` (or until ``stop_after_steps``, a test hook that stops like a kill
        right after the checkpoint of that step)."""
        bar = ProgressBar(self.total_steps, self.pos.global_step, self.stage)
        run_started = time.perf_counter()
        for prompt_indices in self.prompt_batches():
            if self.pos.global_step >= self.total_steps:
                break
            before, started, self.timings = self.pos.global_step, time.perf_counter(), {}
            metrics = self.train_on_batch(prompt_indices)
            plan_len = len(
                self.prompts.epoch_plan(
                    self.config.per_device_prompt_batch_size, seed=self.config.seed, epoch=self.pos.epoch
                )
            )
            epoch_end, last = self.pos.batch == plan_len, self.pos.global_step >= self.total_steps
            tokens = int(metrics.get("train/tokens", 0))
            if (self.pos.epoch * plan_len + self.pos.batch) % self.config.logging_steps == 0 or last:
                self._log(metrics, tokens, started)
                bar.update(
                    self.pos.global_step,
                    {k: metrics[k] for k in ("train/reward", "train/cost", "train/lambda") if k in metrics},
                )
                done = self.pos.global_step
                eta = (time.perf_counter() - run_started) / max(1, done - before) * (self.total_steps - done)
                self.events.progress(done, self.total_steps, self.history["train/epoch"], eta)
            self._after_batch(before, epoch_end, last)
            if stop_after_steps is not None and self.pos.global_step >= stop_after_steps:
                break
        bar.close()

    def finish(self) -> dict[str, float]:
        """Export the actor (HF layout + tokenizer) and write summary.json (§2.3: only the actor)."""
        actor = self.models.actor
        actor.model.save_pretrained(self.output_dir, state_dict=actor.full_state_dict())
        self.models.tokenizer.save_pretrained(self.output_dir)
        summary = {k: v for k, v in self.history.items() if k.split("/")[0] in ("train", "eval", "data")}
        summary["train/steps"] = float(self.pos.global_step)
        write_summary(self.output_dir, summary)
        self.events.checkpoint(self.pos.global_step, ".", final=True)
        return summary

    def run(self) -> dict[str, float]:
        self.events.status("started", f"{self.stage} started")
        try:
            self.prepare()
            self.resume()
            self.train()
            summary = self.finish()
        except BaseException as exc:
            self.events.status(
                "failed", str(exc) or type(exc).__name__, error=type(exc).__name__, step=self.pos.global_step
            )
            raise
        finally:
            if hasattr(self, "tensorboard"):
                self.tensorboard.close()
        self.events.status("completed", f"{self.stage} completed", step=self.pos.global_step)
        self.events.close()
        return summary
