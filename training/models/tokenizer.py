"""Tokenizer loading and the special-token / embedding setup of docs/design/method.md §1.4."""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from training.errors import ConfigError
from training.models.embeddings import embedding_matrices, input_embedding_matrix
from training.models.loading import check_model_dir

logger = logging.getLogger(__name__)

DEFAULT_SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "bos_token": "<s>", "unk_token": "<unk>"}


def load_tokenizer(
    path: str,
    *,
    padding_side: Literal["left", "right"] = "right",
    model_max_length: int | None = None,
    trust_remote_code: bool = False,
) -> PreTrainedTokenizerBase:
    """Load a local tokenizer; add pad/eos/bos/unk if missing (§1.4).

    ``padding_side`` goes to ``from_pretrained``: with transformers 5, setting it afterwards is not
    saved with the tokenizer.
    """
    check_model_dir(path)  # a directory that is not a model gets one line, not the tokenizer's five
    kwargs: dict[str, Any] = {"padding_side": padding_side, "trust_remote_code": trust_remote_code}
    if model_max_length is not None:
        kwargs["model_max_length"] = model_max_length
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load a tokenizer from {path!r}: {exc}") from None
    missing: dict[str, Any] = {
        k: v for k, v in DEFAULT_SPECIAL_TOKENS.items() if getattr(tokenizer, k) is None
    }
    if missing:
        logger.info("adding missing special tokens %s", missing)
        tokenizer.add_special_tokens(missing)
    return tokenizer


@torch.no_grad()
def resize_embeddings_mean(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Grow the embeddings to the tokenizer; new rows are the mean of the old ones (§1.4).

    Also copies the bos/eos/pad ids into ``model.config``.
    """
    old = input_embedding_matrix(model).shape[0]
    new = len(tokenizer)
    if new > old:
        model.resize_token_embeddings(new, mean_resizing=False)
        for weight in embedding_matrices(model):
            if weight.shape[0] == new:
                weight[old:] = weight[:old].mean(dim=0, keepdim=True)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.config, name, getattr(tokenizer, name))
