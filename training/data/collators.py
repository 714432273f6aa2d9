"""Collators: padding per docs/design/method.md §1.4, attention masks from the true lengths.

Pair collators return ONE (2B, L) batch, first half better/safer and second half worse/unsafer,
right-padded jointly, so the score model runs both responses in a single forward pass (§3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from training.data.datasets import IGNORE_INDEX


def pad_sequences(seqs: Sequence[torch.Tensor], value: int, side: str = "right") -> torch.Tensor:
    """Stack 1-D tensors into (B, L_max), padding with ``value`` on ``side``."""
    longest = max(len(s) for s in seqs)
    out = torch.full((len(seqs), longest), value, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        if side == "right":
            out[i, : len(s)] = s
        else:
            out[i, longest - len(s) :] = s
    return out


def lengths_mask(seqs: Sequence[torch.Tensor], side: str = "right") -> torch.Tensor:
    """(B, L_max) attention mask with ones over each sequence's real tokens."""
    return pad_sequences([torch.ones(len(s), dtype=torch.long) for s in seqs], 0, side)


class SupervisedCollator:
    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
        ids = [it["input_ids"] for it in items]
        return {
            "input_ids": pad_sequences(ids, self.pad_token_id),  # (B, L)
            "labels": pad_sequences([it["labels"] for it in items], IGNORE_INDEX),  # (B, L)
            "attention_mask": lengths_mask(ids),  # (B, L)
        }


class PreferenceCollator:
    """``input_ids`` (2B, L): rows [0, B) better, [B, 2B) worse."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
        seqs = [it["better_input_ids"] for it in items] + [it["worse_input_ids"] for it in items]
        return {
            "input_ids": pad_sequences(seqs, self.pad_token_id),  # (2B, L)
            "attention_mask": lengths_mask(seqs),  # (2B, L)
        }


class SafetyPreferenceCollator:
    """``input_ids`` (2B, L): rows [0, B) safer, [B, 2B) unsafer; ``is_safe`` (2B,) per row."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        seqs = [it["safer_input_ids"] for it in items] + [it["unsafer_input_ids"] for it in items]
        is_safe = [it["is_safer_safe"] for it in items] + [it["is_unsafer_safe"] for it in items]
        return {
            "input_ids": pad_sequences(seqs, self.pad_token_id),  # (2B, L)
            "attention_mask": lengths_mask(seqs),  # (2B, L)
            "is_safe": torch.tensor(is_safe, dtype=torch.bool),  # (2B,)
        }


class PromptOnlyCollator:
    """Left-pads prompts (mask 0 on the padding), as batched generation needs (§1.4)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
        ids = [it["input_ids"] for it in items]
        return {
            "input_ids": pad_sequences(ids, self.pad_token_id, side="left"),  # (B, L)
            "attention_mask": lengths_mask(ids, side="left"),  # (B, L)
        }
