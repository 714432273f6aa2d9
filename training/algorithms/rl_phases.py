"""The named phases of one policy-training step (docs/design/method.md §5.2–5.6, §6.3–6.5).

rollout -> score -> compute_advantages, then per micro-batch: update_multiplier -> update_actor
(+ PTX) -> update_critics, in the reference's order (§6.4); plus evaluate. Each phase adds its
wall time to ``timings`` (``timing/*`` metrics). The loop, checkpoints and resume live in
:mod:`training.algorithms.rl_trainer`; what differs between PPO, reward shaping and PPO-Lag lives
in :mod:`training.algorithms.objectives`.
"""

from __future__ import annotations

import time
from typing import cast

import torch

from training.algorithms.experience import Experience, score_rollout, token_values
from training.algorithms.losses import causal_lm_loss
from training.algorithms.objectives import RewardObjective
from training.algorithms.policy_models import PolicyModels
from training.algorithms.ppo_losses import actor_loss, clip_fraction, critic_loss
from training.algorithms.rl_data import PromptSource, PTXSource
from training.algorithms.rollout import Rollout, SamplingSettings, generate, response_log_probs
from training.config import RLConfig
from training.evaluation.generation import sample_responses
from training.evaluation.judging import judge_toyworld, mean, score_metrics
from training.models import ScoreModel


class PolicyPhases:
    """State the phases share; :class:`~training.algorithms.rl_trainer.PolicyTrainer` fills it."""

    config: RLConfig
    objective: RewardObjective
    models: PolicyModels
    prompts: PromptSource
    eval_prompts: PromptSource | None
    ptx: PTXSource | None
    eos: list[int]
    device: torch.device
    sampling: SamplingSettings
    global_step: int
    timings: dict[str, float]

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
        with m.actor.autocast(), m.generation_context():
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
                    cast(ScoreModel, m.reward_critic.model),
                    m.cost_model,
                    None if m.cost_critic is None else cast(ScoreModel, m.cost_critic.model),
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
        metrics = self.objective.update_multiplier(self.global_step)
        self._timed("lambda", started)
        return metrics

    def update_actor(self, exp: Experience) -> dict[str, float]:
        """Clipped PPO step on the objective's advantage; with PTX, the RL and PTX gradients are
        accumulated into one step at ½ each, as the reference's doubled accumulation does (§5.6):
        the actor's backend then accumulates two micro-batches per step and scales each by ½."""
        started, actor, cfg = time.perf_counter(), self.models.actor, self.config
        actor.model.train()
        advantages = self.objective.actor_advantages(exp)  # (B, R)
        with actor.autocast():
            roll = exp.rollout
            log_probs = response_log_probs(
                actor.model, roll.input_ids, roll.attention_mask, roll.prompt_width
            )
            loss = actor_loss(log_probs, exp.log_probs, advantages, exp.mask, cfg.clip_range_ratio)
        actor.backward(loss)
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
            actor.backward(cfg.ptx_coeff * ptx_loss)
            metrics["train/ptx_loss"] = ptx_loss.item()
        metrics["train/actor_grad_norm"] = actor.step() or 0.0
        metrics["train/actor_lr"] = actor.current_lr()
        self._timed("actor", started)
        return metrics

    def _critic_step(
        self, name: str, exp: Experience, old: torch.Tensor | None, returns: torch.Tensor | None
    ) -> dict[str, float]:
        assert old is not None and returns is not None, "advantages are computed before the updates"
        backend = getattr(self.models, name)
        backend.model.train()
        roll = exp.rollout
        with backend.autocast():
            values = token_values(backend.model, roll.input_ids, roll.attention_mask, roll.prompt_width)
            loss = critic_loss(values, old, returns, exp.mask, self.config.clip_range_value)
        backend.backward(loss)
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
        self.global_step += 1
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Sample answers to the eval prompts: mean RM score, CM cost and unsafe ratio (§5.7), and
        with ``ground_truth=toyworld`` the judges' true helpfulness and unsafe rates."""
        if self.eval_prompts is None:
            return {}
        m = self.models
        with m.actor.autocast(), m.generation_context():
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
