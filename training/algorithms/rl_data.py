"""Prompt and PTX data of the policy stages, in a deterministic, resumable order.

Prompts are deduplicated (§1.4) and those longer than ``max_prompt_length`` tokens are dropped up
front and counted (the length budget of §12.3). The order of an epoch is a pure function of
(seed, epoch), so a resumed run continues with exactly the prompts an uninterrupted one would see.
The PTX rows are cycled (§5.2: the PTX loader is never exhausted before the prompt loader).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from training.data import (
    PromptOnlyCollator,
    PromptOnlyDataset,
    SupervisedCollator,
    SupervisedDataset,
    read_rows,
)
from training.data.batching import plan_epoch
from training.errors import DataError


class PromptSource:
    """Tokenised prompts within the length budget, and the row each came from."""

    def __init__(
        self, path: str | list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, max_prompt_length: int
    ):
        dataset = PromptOnlyDataset(path, tokenizer, max_length=max_prompt_length + 1)
        keep = [i for i, n in enumerate(dataset.lengths) if n <= max_prompt_length]
        self.dropped = len(dataset) - len(keep)
        if not keep:
            raise DataError(f"{path}: no prompt fits max_prompt_length={max_prompt_length} tokens")
        self.prompts = [dataset.prompts[i] for i in keep]
        self.rows = [dataset.rows[i] for i in keep]
        self.input_ids = [dataset.input_ids[i] for i in keep]
        self.collate = PromptOnlyCollator(tokenizer.pad_token_id)

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """Left-padded ``input_ids`` and ``attention_mask`` (B, S) of these prompts."""
        return self.collate([{"input_ids": self.input_ids[i]} for i in indices])

    def epoch_plan(self, batch_size: int, *, seed: int, epoch: int) -> list[list[int]]:
        """Shuffled batches of one epoch (the last may be short)."""
        lengths = [len(ids) for ids in self.input_ids]
        return plan_epoch(lengths, batch_size, seed=seed, epoch=epoch, group_by_length=False)

    def in_order(self, batch_size: int) -> list[list[int]]:
        """Batches in file order (evaluation)."""
        return [list(range(s, min(s + batch_size, len(self)))) for s in range(0, len(self), batch_size)]


@dataclass
class PTXPosition:
    epoch: int = 0
    batch: int = 0


class PTXSource:
    """Supervised micro-batches for the PTX loss, cycling through shuffled epochs forever."""

    def __init__(
        self, path: str, tokenizer: PreTrainedTokenizerBase, max_length: int, batch_size: int, seed: int
    ):
        self.dataset = SupervisedDataset(read_rows(path), tokenizer, max_length)
        if len(self.dataset) == 0:
            raise DataError(f"{path}: no PTX rows")
        self.collate = SupervisedCollator(tokenizer.pad_token_id)
        self.batch_size, self.seed = batch_size, seed
        self.position = PTXPosition()

    def next_batch(self) -> dict[str, torch.Tensor]:
        plan = plan_epoch(
            self.dataset.lengths,
            self.batch_size,
            seed=self.seed,
            epoch=self.position.epoch,
            group_by_length=False,
        )
        if self.position.batch >= len(plan):
            self.position = PTXPosition(self.position.epoch + 1, 0)
            return self.next_batch()
        indices = plan[self.position.batch]
        self.position.batch += 1
        return self.collate([self.dataset[i] for i in indices])

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.position.epoch, "batch": self.position.batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = PTXPosition(int(state["epoch"]), int(state["batch"]))
