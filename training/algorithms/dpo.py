"""DPO on helpfulness preferences, the paper's other baseline (docs/design/method.md §7.4).

``python -m training dpo --config run.json``. Policy and frozen reference start from the SFT model;
only the ``better`` label is used. Per pair, with d the first token where the two responses differ
and e each response's last attended token, Δ = Σ_{tokens d..e} (log π - log π_ref), i.e. entries
d-1 .. e-1 of the shifted log-prob array (the reference sums [d, e], off by one), and
loss = -log σ(β·(Δ_w - Δ_l)). Logged: ``reward`` (β·Δ), ``better/worse_sample_reward``,
``reward_accuracy`` and ``reward_margin``, on train and eval pairs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import torch
from torch import nn
from transformers import PreTrainedModel

from training.algorithms.dpo_loss import dpo_loss, response_log_prob_sum
from training.algorithms.rollout import gather_log_probs
from training.config import DPOConfig
from training.data import PreferenceCollator, PreferenceDataset
from training.engine.distributed import all_reduce_sum
from training.engine.task import Batch, Task
from training.engine.trainer import Trainer
from training.models import end_index_of, load_causal_lm, load_tokenizer, resize_embeddings_mean


def first_difference(
    better: torch.Tensor, worse: torch.Tensor, better_mask: torch.Tensor, worse_mask: torch.Tensor
) -> torch.Tensor:
    """First index where two right-padded rows differ, in tokens or in length (B,). The rows share
    the prompt, so d ≥ 1; since each ends with its EOS, they differ at the latest where the
    shorter one ends."""
    differs = (better != worse) | (better_mask != worse_mask)  # (B, L)
    return differs.float().argmax(dim=1)  # (B,)


def sequence_log_probs(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Shifted per-token log-probs (B, L-1) of right-padded rows: entry t is log π(x_{t+1} | x_≤t).
    No mask is needed: under causal attention real tokens never see the padding after them."""
    logits = model(input_ids=input_ids, use_cache=False).logits[:, :-1]  # (B, L-1, V)
    return gather_log_probs(logits, input_ids[:, 1:])


class DPOTask(Task):
    stage = "dpo"
    config: DPOConfig

    def __init__(self, config: DPOConfig) -> None:
        self.config = config
        self.eval_dataset = None

    def setup(self) -> dict[str, float]:
        cfg = self.config
        self.tokenizer = load_tokenizer(
            cfg.model_name_or_path,
            padding_side="right",
            model_max_length=cfg.max_length,
            trust_remote_code=cfg.trust_remote_code,
        )
        self.train_dataset = PreferenceDataset(cfg.train_data, self.tokenizer, cfg.max_length)
        self.train_dataset.report.log("train")
        metrics = self.train_dataset.report.as_metrics("train")
        if cfg.eval_data:
            self.eval_dataset = PreferenceDataset(cfg.eval_data, self.tokenizer, cfg.max_length)
            metrics.update(self.eval_dataset.report.as_metrics("eval"))
        self.collate = PreferenceCollator(self.tokenizer.pad_token_id)
        return metrics

    def build_model(self) -> nn.Module:
        cfg = self.config
        model = load_causal_lm(cfg.model_name_or_path, trust_remote_code=cfg.trust_remote_code)
        reference = load_causal_lm(
            cfg.reference_model_name_or_path or cfg.model_name_or_path,
            trust_remote_code=cfg.trust_remote_code,
        )
        for m in (model, reference):
            resize_embeddings_mean(m, self.tokenizer)
        self.reference = reference.eval().requires_grad_(False)
        self.reference_partitioned = cfg.zero_stage == 3
        if self.reference_partitioned:
            self._partition_reference()
        return model

    def _partition_reference(self) -> None:
        """Under ZeRO-3 the frozen reference is partitioned across ranks by an inference engine
        (§12.1), like the policy; its forward gathers one layer at a time."""
        import deepspeed

        from training.engine.deepspeed_config import build_eval_deepspeed_config
        from training.engine.distributed import world_size
        from training.engine.runtime import resolve_device, use_bf16

        bf16 = use_bf16(self.config, resolve_device(self.config))  # as the policy's engine
        ds_config = build_eval_deepspeed_config(
            zero_stage=3, offload=self.config.offload, bf16=bf16, world_size=world_size()
        )
        self.reference_engine, *_ = deepspeed.initialize(
            model=self.reference, config=ds_config, dist_init_required=True
        )

    def _pair_sums(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Σ log π over each response's tokens d..e for the policy and the reference: (2B,) each."""
        ids, mask = batch["input_ids"], batch["attention_mask"]  # (2B, L) better rows, then worse
        half = ids.shape[0] // 2
        first = first_difference(ids[:half], ids[half:], mask[:half], mask[half:]).repeat(2)  # (2B,)
        end = end_index_of(mask)  # (2B,)
        if not self.reference_partitioned:
            self.reference.to(ids.device)
        with torch.no_grad():
            reference = response_log_prob_sum(sequence_log_probs(self.reference, ids), first, end)
        policy = response_log_prob_sum(sequence_log_probs(model, ids), first, end)
        return policy, reference

    def _metrics(self, better: torch.Tensor, worse: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "reward": torch.cat([better, worse]).mean(),
            "better_sample_reward": better.mean(),
            "worse_sample_reward": worse.mean(),
            "reward_accuracy": (better > worse).float().mean(),
            "reward_margin": (better - worse).mean(),
        }

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        policy, reference = self._pair_sums(model, batch)
        half = policy.shape[0] // 2
        loss, better, worse = dpo_loss(
            policy[:half], policy[half:], reference[:half], reference[half:], self.config.scale_coeff
        )
        return loss, self._metrics(better, worse)

    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]:
        """Pair-weighted means over the eval pairs of every rank."""
        keys = (
            "loss",
            "reward",
            "better_sample_reward",
            "worse_sample_reward",
            "reward_accuracy",
            "reward_margin",
        )
        device = next(iter(model.parameters())).device
        totals = torch.zeros(len(keys) + 1, dtype=torch.float64, device=device)  # sums, then pairs
        with self._local_reference():
            totals = self._eval_totals(model, batches, keys, totals)
        totals = all_reduce_sum(totals)
        pairs = max(1.0, float(totals[-1]))
        return {key: float(totals[i]) / pairs for i, key in enumerate(keys)}

    def _local_reference(self) -> contextlib.AbstractContextManager[None]:
        """Under ZeRO-3 the reference, like the policy, runs on gathered local weights during
        evaluation: ranks may hold different numbers of eval batches."""
        if not self.reference_partitioned:
            return contextlib.nullcontext()
        from training.engine.backends import zero3_local_weights

        return zero3_local_weights(self.reference, self.reference_engine.optimizer)

    def _eval_totals(
        self, model: nn.Module, batches: Iterable[Batch], keys: tuple[str, ...], totals: torch.Tensor
    ) -> torch.Tensor:
        device = totals.device
        for batch in batches:
            loss, metrics = self.loss(model, batch)
            size = batch["input_ids"].shape[0] // 2
            values = [loss, *(metrics[k] for k in keys[1:])]
            totals += torch.tensor(
                [float(v) * size for v in values] + [size], dtype=torch.float64, device=device
            )
        return totals

    def export(self, model: nn.Module, output_dir: Path, state_dict: dict[str, torch.Tensor]) -> None:
        cast(PreTrainedModel, model).save_pretrained(output_dir, state_dict=state_dict)
        self.tokenizer.save_pretrained(output_dir)


def run_dpo(config: DPOConfig) -> dict[str, float]:
    return Trainer(DPOTask(config)).run()
