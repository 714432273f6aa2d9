"""The shared-prompt layout of preference pairs: one row [prompt, first, second] per pair.

The two-row layout (``PreferenceCollator``) runs [prompt+first] and [prompt+second] as two rows, so
the prompt is computed twice. Here each pair is one row: the tokens the two sequences share (the
prompt, or more exactly their longest common token prefix), then the rest of the first sequence,
then the rest of the second. With

* ``position_ids`` that restart for the second response right after the shared prefix, and
* a block-causal attention mask built from ``segment_ids`` (prefix tokens attend causally to the
  prefix; first-response tokens to prefix + first; second-response tokens to prefix + second,
  never to the first; padding never attended by a real token),

every response token sees exactly the keys, values and positions it sees alone, so its hidden
state, its score and the end score at its EOS are those of the two-row layout, while the prompt is
computed once. The score model turns ``segment_ids`` into the 4D mask
(:mod:`training.models.shared_prompt`).

The prefix is measured on token ids rather than taken from the prompt's own tokenization: a BPE
merge across the prompt/answer boundary then cannot make the layouts differ, and both sequences
always keep at least their last (EOS) token as their own, so each end score has its own position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

SEGMENT_PREFIX = 0  # shared prompt: visible to every later token of the row
SEGMENT_FIRST = 1  # better / safer response
SEGMENT_SECOND = 2  # worse / unsafer response
SEGMENT_PAD = 3  # padding: attends to itself (no empty softmax row), never seen by real tokens


def common_prefix_length(first: torch.Tensor, second: torch.Tensor) -> int:
    """Tokens the two sequences share at the start, leaving each at least one token of its own."""
    n = min(len(first), len(second))
    differs = (first[:n] != second[:n]).nonzero()
    shared = int(differs[0]) if len(differs) else n
    return min(shared, n - 1)


def shared_row_length(first: torch.Tensor, second: torch.Tensor, prefix: int) -> int:
    """Length of the pair's one row: the prefix once, then both responses."""
    return len(first) + len(second) - prefix


def shared_prompt_batch(
    firsts: Sequence[torch.Tensor],
    seconds: Sequence[torch.Tensor],
    prefixes: Sequence[int],
    pad_token_id: int,
) -> dict[str, torch.Tensor]:
    """Right-padded shared-prompt rows of B pairs.

    Returns ``input_ids``, ``attention_mask`` (1 on the row's real tokens), ``position_ids``,
    ``segment_ids`` (all (B, L)), ``end_index`` (B, 2): the row positions of the first and second
    sequence's last token, and ``sequence_lengths`` (B, 2): the lengths of the two logical
    sequences prompt+first and prompt+second (what the two-row layout would hold).
    """
    rows = [torch.cat([a, b[p:]]) for a, b, p in zip(firsts, seconds, prefixes, strict=True)]
    input_ids = pad_sequence(rows, batch_first=True, padding_value=pad_token_id)  # (B, L)
    batch, length = input_ids.shape
    segment_ids = torch.full((batch, length), SEGMENT_PAD, dtype=torch.long)  # (B, L)
    position_ids = torch.zeros((batch, length), dtype=torch.long)  # (B, L); padding at 0, in range
    end_index = torch.zeros((batch, 2), dtype=torch.long)  # (B, 2)
    for i, (a, b, p) in enumerate(zip(firsts, seconds, prefixes, strict=True)):
        n_a, n_b = len(a), len(b)
        stop = n_a + n_b - p  # end of the second response's own tokens in the row
        segment_ids[i, :p] = SEGMENT_PREFIX
        segment_ids[i, p:n_a] = SEGMENT_FIRST
        segment_ids[i, n_a:stop] = SEGMENT_SECOND
        position_ids[i, :n_a] = torch.arange(n_a)
        position_ids[i, n_a:stop] = torch.arange(p, n_b)  # restart where the second one diverges
        end_index[i, 0], end_index[i, 1] = n_a - 1, stop - 1
    lengths = torch.tensor([[len(a), len(b)] for a, b in zip(firsts, seconds, strict=True)])  # (B, 2)
    return {
        "input_ids": input_ids,
        "attention_mask": (segment_ids != SEGMENT_PAD).long(),
        "position_ids": position_ids,
        "segment_ids": segment_ids,
        "end_index": end_index,
        "sequence_lengths": lengths,
    }


def shared_prompt_inputs(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The score model's keyword inputs that select the layout, from a ``shared_prompt_batch``:
    ``model(batch["input_ids"], batch["attention_mask"], **shared_prompt_inputs(batch))``."""
    return {key: batch[key] for key in ("segment_ids", "position_ids", "end_index")}


class SharedPromptPreferenceCollator:
    """Preference pairs as one row each; end scores come back as (B, 2): better, worse."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return shared_prompt_batch(
            [it["better_input_ids"] for it in items],
            [it["worse_input_ids"] for it in items],
            [it["prefix_length"] for it in items],
            self.pad_token_id,
        )


class SharedPromptSafetyPreferenceCollator:
    """Safety pairs as one row each (safer first); ``is_safe`` (2B,) is ordered like the two-row
    layout's rows, safer responses then unsafer ones, to match the flattened end scores."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = shared_prompt_batch(
            [it["safer_input_ids"] for it in items],
            [it["unsafer_input_ids"] for it in items],
            [it["prefix_length"] for it in items],
            self.pad_token_id,
        )
        is_safe = [it["is_safer_safe"] for it in items] + [it["is_unsafer_safe"] for it in items]
        batch["is_safe"] = torch.tensor(is_safe, dtype=torch.bool)  # (2B,)
        return batch
