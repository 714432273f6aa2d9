"""Supervised fine-tuning (docs/design/method.md §4): causal-LM cross-entropy on answer tokens + EOS.

``python -m training sft --config run.json``. Eval metrics: ``eval/loss``, ``eval/perplexity`` and
``eval/accuracy`` (next-token accuracy on answer tokens).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import torch
from torch import nn
from transformers import PreTrainedModel

from training.algorithms.losses import causal_lm_loss
from training.config import SFTConfig
from training.data import IGNORE_INDEX, SupervisedCollator, SupervisedDataset, read_rows
from training.engine.distributed import all_reduce_sum
from training.engine.task import Batch, Task
from training.engine.trainer import Trainer
from training.errors import DataError
from training.models import load_causal_lm, load_tokenizer, resize_embeddings_mean

logger = logging.getLogger(__name__)


def _token_stats(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed CE, correct next tokens, labelled tokens) over a batch; logits (B, L, V), labels (B, L)."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]  # (B, L-1, V), (B, L-1)
    mask = shift_labels != IGNORE_INDEX
    ce = nn.functional.cross_entropy(
        shift_logits.transpose(1, 2), shift_labels, ignore_index=IGNORE_INDEX, reduction="sum"
    )
    correct = ((shift_logits.argmax(-1) == shift_labels) & mask).sum()
    return ce, correct, mask.sum()


class SFTTask(Task):
    stage = "sft"
    config: SFTConfig
    train_dataset: SupervisedDataset
    eval_dataset: SupervisedDataset | None

    def __init__(self, config: SFTConfig) -> None:
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
        self.train_dataset = SupervisedDataset(read_rows(cfg.train_data), self.tokenizer, cfg.max_length)
        if cfg.eval_data:
            self.eval_dataset = SupervisedDataset(read_rows(cfg.eval_data), self.tokenizer, cfg.max_length)
        self.collate = SupervisedCollator(self.tokenizer.pad_token_id)
        metrics: dict[str, float] = {}
        for split, ds in (("train", self.train_dataset), ("eval", self.eval_dataset)):
            if ds is not None:
                metrics[f"data/{split}_rows"] = float(len(ds))
                metrics[f"data/{split}_dropped_no_answer"] = float(ds.dropped_no_answer)
                if ds.dropped_no_answer:
                    logger.info(
                        "%s data: dropped %d rows whose answer was cut by max_length",
                        split,
                        ds.dropped_no_answer,
                    )
        if not len(self.train_dataset):
            raise DataError(
                f"{cfg.train_data}: no rows with answer tokens within max_length={cfg.max_length}"
            )
        return metrics

    def build_model(self) -> nn.Module:
        model = load_causal_lm(
            self.config.model_name_or_path, trust_remote_code=self.config.trust_remote_code
        )
        resize_embeddings_mean(model, self.tokenizer)
        return model

    def _logits(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        # Right padding: real tokens never attend to the padding after them, so no mask is needed
        # and sdpa takes its causal fast path; padded positions carry label -100.
        return model(input_ids=batch["input_ids"], use_cache=False).logits  # (B, L, V)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self._logits(model, batch)
        loss = causal_lm_loss(logits, batch["labels"])
        with torch.no_grad():
            _, correct, count = _token_stats(logits, batch["labels"])
        return loss, {"accuracy": correct.float() / count.clamp(min=1)}

    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]:
        device = next(iter(model.parameters())).device
        totals = torch.zeros(3, dtype=torch.float64, device=device)
        for batch in batches:
            ce, correct, count = _token_stats(self._logits(model, batch), batch["labels"])
            totals += torch.stack([ce.double(), correct.double(), count.double()])
        ce, correct, count = all_reduce_sum(totals).tolist()
        loss = ce / max(count, 1.0)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": correct / max(count, 1.0)}

    def export(self, model: nn.Module, output_dir: Path, state_dict: dict[str, torch.Tensor]) -> None:
        cast(PreTrainedModel, model).save_pretrained(output_dir, state_dict=state_dict)
        self.tokenizer.save_pretrained(output_dir)


def run_sft(config: SFTConfig) -> dict[str, float]:
    return Trainer(SFTTask(config)).run()
