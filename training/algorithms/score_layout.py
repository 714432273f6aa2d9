"""Which layout the reward and cost models train pairs in: shared-prompt (one row per pair, the
default) or two rows per pair, with the reason whenever it is the two-row fallback.

The shared-prompt layout (``training.data.shared_prompt``) gives the same end scores, losses and
gradients as two rows while computing the prompt once. It falls back to two rows when

* ``shared_prompt`` is off in the config;
* the loss is token-wise: it compares per-token scores position by position over the two-row span
  [d, e], which may cover the shorter row's padding (spec §3.1), so it needs the two-row rows;
* the backbone cannot take the layout exactly: no dense 4D mask for its attention implementation,
  no ``position_ids``, a sliding window shorter than ``max_length``
  (``training.models.shared_prompt.unsupported_reason``), or a probe forward pass whose hidden
  states differ from the sequences run alone (e.g. ALiBi models that build biases from a 2D mask).
"""

from __future__ import annotations

import torch

from training.config import ScoreModelConfig
from training.data import common_prefix_length, shared_prompt_batch, shared_prompt_inputs
from training.models import ScoreModel
from training.models.embeddings import input_embedding_matrix
from training.models.shared_prompt import unsupported_reason

_PROBE_TOLERANCE = {torch.float64: 1e-6, torch.float32: 1e-4}  # relative; 16-bit dtypes: 5e-2


def config_reason(config: ScoreModelConfig) -> str | None:
    """Why the config asks for two rows per pair, or None."""
    if not config.shared_prompt:
        return "shared_prompt is off"
    if config.loss_type == "token-wise":
        return "the token-wise loss compares per-token scores over the two-row span (padding included)"
    return None


def model_reason(model: ScoreModel, max_length: int) -> str | None:
    """Why this model cannot run the shared-prompt layout exactly, or None."""
    return unsupported_reason(model.backbone, max_length) or probe_mismatch(model)


def probe_mismatch(model: ScoreModel) -> str | None:
    """Run one random pair in the shared layout and each sequence alone; None when the hidden
    states of every token agree (eval mode, no gradient; the normalizer is not touched)."""
    embeddings = input_embedding_matrix(model.backbone)
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(embeddings.shape[0], (4,), generator=generator)
    first = torch.cat([prompt, torch.randint(embeddings.shape[0], (3,), generator=generator)])  # (7,)
    second = torch.cat([prompt, torch.randint(embeddings.shape[0], (2,), generator=generator)])  # (6,)
    prefix = common_prefix_length(first, second)
    batch = shared_prompt_batch([first], [second], [prefix], pad_token_id=0)
    batch = {k: v.to(embeddings.device) for k, v in batch.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            shared = model(
                batch["input_ids"],
                batch["attention_mask"],
                **shared_prompt_inputs(batch),
            ).last_hidden_state[0]  # (L, H)
            alone = [
                model(ids[None], torch.ones_like(ids[None])).last_hidden_state[0]
                for ids in (first.to(embeddings.device), second.to(embeddings.device))
            ]  # (7, H), (6, H)
    except Exception as exc:  # an architecture that rejects a 4D mask or explicit position ids
        return f"the backbone rejects the layout ({type(exc).__name__}: {exc})"
    finally:
        model.train(was_training)
    want = torch.cat([alone[0], alone[1][prefix:]])  # (7 + 6 - prefix, H)
    error = float((shared[: len(want)] - want).abs().max())
    tolerance = _PROBE_TOLERANCE.get(embeddings.dtype, 5e-2) * (1.0 + float(want.abs().max()))
    if not error <= tolerance:  # also catches NaN
        return f"a probe pair's hidden states differ from the sequences alone by {error:.2e}"
    return None
