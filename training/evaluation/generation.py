"""Sample a policy's responses to a prompt set and score them (used by training-time evaluation,
``generate`` and the arena)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from training.algorithms.experience import end_scores
from training.algorithms.rl_data import PromptSource
from training.algorithms.rollout import Rollout, SamplingSettings, generate
from training.models import ScoreModel


@dataclass
class Responses:
    """Decoded responses to prompts ``indices`` of a source, with their token counts and scores."""

    indices: list[int]
    texts: list[str]
    lengths: list[int]
    rewards: list[float] | None = None
    costs: list[float] | None = None

    def scores(self) -> tuple[list[float], list[float]]:
        """(rewards, costs) of responses scored by both a reward and a cost model (the arena's)."""
        if self.rewards is None or self.costs is None:
            raise ValueError("these responses were not scored by both a reward and a cost model")
        return self.rewards, self.costs


def eos_ids(tokenizer: PreTrainedTokenizerBase, model: nn.Module) -> list[int]:
    """The tokenizer's EOS plus any extra EOS ids of the model's generation config."""
    ids = {tokenizer.eos_token_id}
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(extra, int):
        ids.add(extra)
    elif isinstance(extra, list):
        ids.update(extra)
    return sorted(i for i in ids if i is not None)


def decode(tokenizer: PreTrainedTokenizerBase, rollout: Rollout) -> list[str]:
    """Response texts without special tokens (the EOS and padding are dropped)."""
    mask = rollout.response_mask
    return [
        str(tokenizer.decode(row[keep], skip_special_tokens=True)).strip()
        for row, keep in zip(rollout.response_ids, mask, strict=True)
    ]


@torch.no_grad()
def sample_responses(
    policy: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    source: PromptSource,
    settings: SamplingSettings,
    batch_size: int,
    device: torch.device,
    *,
    reward_model: ScoreModel | None = None,
    cost_model: ScoreModel | None = None,
    autocast: contextlib.AbstractContextManager[Any] | None = None,
    indices: Sequence[int] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Responses:
    """Answer every prompt (or ``indices``) once, in order, and score the answers if models are given.

    ``on_batch(n)`` is called after each batch with the number of prompts it answered (progress)."""
    order = list(range(len(source))) if indices is None else list(indices)
    was_training = policy.training
    policy.eval()
    out = Responses(order, [], [])
    rewards: list[float] = []
    costs: list[float] = []
    eos = eos_ids(tokenizer, policy)
    for start in range(0, len(order), batch_size):
        batch = source.batch(order[start : start + batch_size])
        with autocast or contextlib.nullcontext():
            rollout = generate(
                policy,
                batch["input_ids"].to(device),
                batch["attention_mask"].to(device),
                settings,
                eos,
                tokenizer.pad_token_id,
            )
        out.texts += decode(tokenizer, rollout)
        out.lengths += rollout.response_lengths.tolist()
        if reward_model is not None:
            rewards += end_scores(reward_model, rollout).tolist()
        if cost_model is not None:
            costs += end_scores(cost_model, rollout).tolist()
        if on_batch is not None:
            on_batch(len(rollout.response_lengths))
    policy.train(was_training)
    out.rewards = rewards if reward_model is not None else None
    out.costs = costs if cost_model is not None else None
    return out
