"""The contract between the shared training loop and one algorithm (SFT, reward model, cost model...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from training.config import TrainingConfig

Batch = dict[str, Any]


class TrainDataset(Protocol):
    """What the loop needs of a dataset: rows by index and each row's length (for batching)."""

    lengths: list[int]

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Any: ...


class Task(ABC):
    """An algorithm plugged into :class:`training.engine.trainer.Trainer`."""

    stage: str
    config: TrainingConfig
    train_dataset: TrainDataset
    eval_dataset: TrainDataset | None
    collate: Callable[[list[Any]], Batch]

    @abstractmethod
    def setup(self) -> dict[str, float]:
        """Load tokenizer and data (set the three attributes above); return data metrics."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The trainable module (loaded from ``config.model_name_or_path``)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss of one micro-batch and detached metrics (keys without the ``train/`` prefix)."""

    @abstractmethod
    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]:
        """Eval metrics (keys without the ``eval/`` prefix); collectives allowed (every rank calls)."""

    @abstractmethod
    def export(self, model: nn.Module, output_dir: Path, state_dict: dict[str, torch.Tensor]) -> None:
        """Save the final model (HF layout) and tokenizer into ``output_dir``."""

    def count_tokens(self, batch: Batch) -> int:
        """Non-pad tokens of a batch (for throughput)."""
        return int(batch["attention_mask"].sum())

    def final_report(self, output_dir: Path) -> None:  # noqa: B027 - optional hook
        """Optional extra outputs after the final evaluation (e.g. score histograms)."""
