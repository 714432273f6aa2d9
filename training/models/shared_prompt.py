"""Model side of the shared-prompt layout (``training.data.shared_prompt``): the block attention mask
and which backbones can take it.

transformers 5 decoders (Llama, Qwen2, Mistral, GPT-2, ...) build their causal mask in
``masking_utils.create_causal_mask``, which returns a 4D ``attention_mask`` unchanged, and
``sdpa_attention_forward`` sets ``is_causal`` only when no mask is given; so a 4D mask replaces the
model's causal mask instead of being combined with it, and must encode causality itself. Its format
follows the attention implementation: ``sdpa`` takes a boolean mask (True = attend) and ``eager``
adds the mask to the attention logits, so it needs 0 / a large negative float. Other
implementations (flash-attention, flex, paged) take no dense 4D mask: those backbones use the
two-row layout.
"""

from __future__ import annotations

import inspect

import torch
from transformers import PreTrainedModel

from training.data.shared_prompt import SEGMENT_PREFIX

DENSE_MASK_ATTENTION = ("sdpa", "eager")


def block_attention_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """(B, L) segment ids -> (B, 1, L, L) bool mask, True where query q may attend key k.

    q attends k when k <= q (row order is causal within every segment) and k is in q's own
    segment or in the shared prefix. So the second response never sees the first, and a real
    token never sees padding (its own segment); a padding query sees itself, so no softmax row is
    empty (an all-masked row would make NaN hidden states, and NaN * 0 in the head's gradient).
    """
    length = segment_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()  # (L, L)
    query, key = segment_ids[:, :, None], segment_ids[:, None, :]  # (B, L, 1), (B, 1, L)
    allowed = causal & ((key == query) | (key == SEGMENT_PREFIX))  # (B, L, L)
    return allowed[:, None]


def backbone_attention_mask(
    allowed: torch.Tensor, attn_implementation: str, dtype: torch.dtype
) -> torch.Tensor:
    """The (B, 1, L, L) mask in the format the attention implementation consumes as is."""
    if attn_implementation == "sdpa":
        return allowed
    # eager: added to the logits; the dtype's minimum (not -inf) keeps every softmax finite.
    additive = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return additive.masked_fill(~allowed, torch.finfo(dtype).min)


def unsupported_reason(backbone: PreTrainedModel, max_length: int) -> str | None:
    """Why this backbone cannot run the shared-prompt layout exactly, or None when it can.

    These are the static reasons; ``training.algorithms.score_layout`` also runs a numerical
    probe, which catches the rest (e.g. ALiBi models that derive biases from a 2D mask).
    """
    config = backbone.config
    attn = getattr(config, "_attn_implementation", None)
    if attn not in DENSE_MASK_ATTENTION:
        return f"attention implementation {attn!r} takes no dense 4D mask (needs sdpa or eager)"
    if "position_ids" not in inspect.signature(backbone.forward).parameters:
        return f"{type(backbone).__name__}.forward takes no position_ids"
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder models are not decoders"
    other = sorted({t for t in getattr(config, "layer_types", None) or () if t != "full_attention"})
    if set(other) - {"sliding_attention"}:
        return f"layer types {other} need their own masks"
    window = getattr(config, "sliding_window", None)
    # A custom 4D mask replaces the model's sliding-window mask; that changes nothing only while
    # no sequence is longer than the window.
    if window is not None and window < max_length:
        return f"sliding window {window} < max_length {max_length}"
    return None
