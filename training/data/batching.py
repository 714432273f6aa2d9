"""Length-aware batching with a deterministic, resumable order.

The order of an epoch is a pure function of (seed, epoch), so a resumed run rebuilds it and skips
the batches already consumed. With ``group_by_length`` the shuffled indices are cut into windows of
``group_size`` batches, each window is sorted by length and cut into batches, and the batch order is
shuffled again: batches hold sequences of similar length, so little compute goes to padding, while
the data order stays random across windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def plan_epoch(
    lengths: Sequence[int],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    group_size: int = 50,
    rank: int = 0,
    world_size: int = 1,
) -> list[list[int]]:
    """The batches (lists of dataset indices) this rank sees in ``epoch``; the last may be short."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if group_by_length:
        window = batch_size * group_size
        order = [
            i
            for start in range(0, len(order), window)
            for i in sorted(order[start : start + window], key=lambda j: -lengths[j])
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in shuffled]
    per_rank = len(batches) // world_size if world_size > 1 else len(batches)
    return batches[rank::world_size][:per_rank]


def padding_fraction(batches: list[list[int]], lengths: Sequence[int]) -> float:
    """Share of token slots that are padding when each batch is padded to its longest row."""
    real = sum(lengths[i] for b in batches for i in b)
    slots = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1.0 - real / slots if slots else 0.0
