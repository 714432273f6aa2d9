"""Shared parts of reward- and cost-model training (docs/design/method.md §2-3)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.algorithms.score_layout import config_reason, model_reason
from training.config import ScoreModelConfig
from training.data import PreferenceDataset, SafetyPreferenceDataset, shared_prompt_inputs
from training.engine.distributed import all_gather_cat
from training.engine.task import Batch, Task
from training.models import (
    ScoreModel,
    load_score_model,
    load_tokenizer,
    resize_embeddings_mean,
    save_score_model,
)
from training.models.normalizer import ScoreType

logger = logging.getLogger(__name__)


class ScoreModelTask(Task):
    """B pairs -> one forward pass -> end scores (2B,): first responses, then second ones.

    The pairs are one (B, L) batch of shared-prompt rows (the default) or one (2B, L) batch of
    two rows per pair (``training.algorithms.score_layout`` says which, and why).
    """

    score_type: ScoreType
    config: ScoreModelConfig
    train_dataset: PreferenceDataset | SafetyPreferenceDataset
    eval_dataset: PreferenceDataset | SafetyPreferenceDataset | None
    dataset_cls: Callable[
        [str, Any, int], PreferenceDataset | SafetyPreferenceDataset
    ]  # (path, tokenizer, max_length)
    two_row_collator: Callable[[int], Callable[[list[Any]], Batch]]  # pad id -> collator
    shared_prompt_collator: Callable[[int], Callable[[list[Any]], Batch]]

    def __init__(self, config: ScoreModelConfig) -> None:
        self.config = config
        self.eval_dataset = None
        self.last_eval: dict[str, torch.Tensor] = {}
        self.shared_prompt = False

    def make_datasets(self, tokenizer: Any) -> None:
        cfg = self.config
        self.train_dataset = self.dataset_cls(cfg.train_data, tokenizer, cfg.max_length)
        if cfg.eval_data:
            self.eval_dataset = self.dataset_cls(cfg.eval_data, tokenizer, cfg.max_length)
        reason = config_reason(cfg)
        self.use_layout(shared_prompt=reason is None, reason=reason)

    def use_layout(self, *, shared_prompt: bool, reason: str | None = None) -> None:
        """Collate pairs (and group them by length) in the shared-prompt or the two-row layout."""
        self.shared_prompt = shared_prompt
        make = self.shared_prompt_collator if shared_prompt else self.two_row_collator
        self.collate = make(self.tokenizer.pad_token_id)
        for dataset in (self.train_dataset, self.eval_dataset):
            if dataset is not None:
                dataset.use_shared_prompt(shared_prompt)
        if shared_prompt:
            logger.info("pairs run as one shared-prompt row each (the prompt is computed once)")
        else:
            logger.warning("pairs run as two rows each: %s", reason)

    def setup(self) -> dict[str, float]:
        cfg = self.config
        self.tokenizer = load_tokenizer(
            cfg.model_name_or_path,
            padding_side="right",
            model_max_length=cfg.max_length,
            trust_remote_code=cfg.trust_remote_code,
        )
        self.make_datasets(self.tokenizer)
        self.train_dataset.report.log("train")
        metrics = self.train_dataset.report.as_metrics("train")
        if self.eval_dataset is not None:
            self.eval_dataset.report.log("eval")
            metrics.update(self.eval_dataset.report.as_metrics("eval"))
        return metrics

    def build_model(self) -> nn.Module:
        cfg = self.config
        model = load_score_model(
            cfg.model_name_or_path,
            score_type=self.score_type,
            normalizer_type=cfg.normalizer_type,
            momentum=cfg.normalizer_momentum,
            do_normalize=cfg.normalize_score_during_training,
            trust_remote_code=cfg.trust_remote_code,
        )
        resize_embeddings_mean(model.backbone, self.tokenizer)
        if self.shared_prompt:
            reason = model_reason(model, cfg.max_length)
            if reason is not None:
                self.use_layout(shared_prompt=False, reason=reason)
        return model

    def end_scores(self, model: nn.Module, batch: Batch) -> tuple[Any, torch.Tensor]:
        """One forward pass over the batch; returns the output and the end scores (2B,), first
        responses then second ones, in either layout."""
        if "segment_ids" not in batch:
            out = model(batch["input_ids"], batch["attention_mask"], right_padded=True)
            return out, out.end_scores.squeeze(-1)
        out = model(
            batch["input_ids"],
            batch["attention_mask"],
            **shared_prompt_inputs(batch),
        )
        end = out.end_scores.squeeze(-1)  # (B, 2)
        return out, end.t().reshape(-1)  # (2B,)

    def gather_eval(
        self, model: nn.Module, batches: Iterable[Batch], flag: str | None = None
    ) -> dict[str, torch.Tensor]:
        """Eval end scores of every pair from every rank: ``first``/``second`` (N,), and for a
        per-row batch ``flag`` (2B,) also ``first_<flag>``/``second_<flag>`` (N,)."""
        parts: dict[str, list[torch.Tensor]] = {"first": [], "second": []}
        if flag:
            parts.update({f"first_{flag}": [], f"second_{flag}": []})
        for batch in batches:
            _, end = self.end_scores(model, batch)
            half = end.shape[0] // 2
            parts["first"].append(end[:half].float())
            parts["second"].append(end[half:].float())
            if flag:
                parts[f"first_{flag}"].append(batch[flag][:half])
                parts[f"second_{flag}"].append(batch[flag][half:])
        device = next(iter(model.parameters())).device
        out = {}
        for key, tensors in parts.items():
            dtype = torch.bool if key.endswith(f"_{flag}") else torch.float32
            local = torch.cat(tensors).to(device) if tensors else torch.zeros(0, dtype=dtype, device=device)
            out[key] = all_gather_cat(local)
        self.last_eval = {k: v.cpu() for k, v in out.items()}
        return out

    def export(self, model: nn.Module, output_dir: Path, state_dict: dict[str, torch.Tensor]) -> None:
        assert isinstance(model, ScoreModel)
        save_score_model(model, output_dir, state_dict)
        self.tokenizer.save_pretrained(output_dir)
