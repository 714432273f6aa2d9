"""Typed access to an HF model's embedding matrices (``nn.Module`` attributes type as Tensor | Module)."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from transformers import PreTrainedModel


def input_embedding_matrix(model: nn.Module) -> torch.Tensor:
    """The input embedding matrix (V, H) of an HF model."""
    return cast(torch.Tensor, cast(PreTrainedModel, model).get_input_embeddings().weight)


def embedding_matrices(model: nn.Module) -> list[torch.Tensor]:
    """The input and (when the model has one) output embedding matrices."""
    hf = cast(PreTrainedModel, model)
    modules = (hf.get_input_embeddings(), hf.get_output_embeddings())
    return [cast(torch.Tensor, m.weight) for m in modules if m is not None]
