"""Score model: an HF backbone without its LM head plus a linear score head (docs/design/method.md §2).

Used as reward model, cost model and critic. The sequence score is the score at the **last
attended token** (``end_index``: the last position where ``attention_mask`` is 1), which works for
left and right padding; critics use the per-token ``scores``.

Given ``segment_ids``, ``position_ids`` and ``end_index``, the forward pass runs the shared-prompt
layout of preference pairs (``training.data.shared_prompt``): one row [prompt, first, second] per
pair under a block-causal 4D mask, and end scores at each response's own last token, (B, 2, D).

On disk (``save_pretrained``): the backbone in plain HF layout (config.json + safetensors, loadable
with ``AutoModel``), ``score_head.safetensors`` and the score settings plus normalizer statistics
under ``config.json["score_model"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from training.models.embeddings import input_embedding_matrix
from training.models.normalizer import Normalizer, NormalizerType, ScoreType
from training.models.shared_prompt import backbone_attention_mask, block_attention_mask

SCORE_HEAD_FILE = "score_head.safetensors"


@dataclass
class ScoreOutput:
    """Shapes with one end per row; a shared-prompt forward has K = 2 ends per row: end_scores
    (B, K, D), end_last_hidden_state (B, K, H), end_index (B, K)."""

    scores: torch.Tensor  # (B, L, D) fp32, score at every position
    end_scores: torch.Tensor  # (B, D) fp32, score at the last attended token
    last_hidden_state: torch.Tensor  # (B, L, H)
    end_last_hidden_state: torch.Tensor  # (B, H)
    end_index: torch.Tensor  # (B,) long


def end_index_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """Last position with mask 1 in each row (B, L) -> (B,); 0 for an all-zero row."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)  # (L,)
    return (attention_mask.long() * positions).argmax(dim=1)


def is_right_padded(attention_mask: torch.Tensor) -> bool:
    """True when every row is ones followed by zeros (no left padding, no holes)."""
    return bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """cumsum(mask) - 1, clamped at 0: correct positions under left padding (spec §12.3)."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


class ScoreModel(nn.Module):
    """Backbone + ``Linear(hidden, score_dim)`` head with bias, and a score normalizer."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        *,
        score_type: ScoreType = "reward",
        score_dim: int = 1,
        normalizer_type: NormalizerType = "none",
        momentum: float = 0.9,
        do_normalize: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = backbone.config
        hidden = backbone.config.hidden_size
        self.score_head = nn.Linear(hidden, score_dim, bias=True)
        # HF post_init-style init: normal(0, initializer_range), zero bias (spec §2.1).
        std = getattr(backbone.config, "initializer_range", 0.02)
        nn.init.normal_(self.score_head.weight, mean=0.0, std=std)
        nn.init.zeros_(self.score_head.bias)
        self.score_head.to(dtype=next(backbone.parameters()).dtype)
        self.score_type: ScoreType = score_type
        self.do_normalize = do_normalize and score_type != "critic"
        self.normalizer = Normalizer(normalizer_type, momentum)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, L)
        attention_mask: torch.Tensor,  # (B, L)
        *,
        right_padded: bool | None = None,
        segment_ids: torch.Tensor | None = None,  # (B, L) shared-prompt layout only
        position_ids: torch.Tensor | None = None,  # (B, L) shared-prompt layout only
        end_index: torch.Tensor | None = None,  # (B, K) shared-prompt layout only
    ) -> ScoreOutput:
        if segment_ids is not None:
            if position_ids is None or end_index is None:
                raise ValueError("the shared-prompt layout needs position_ids and end_index")
            hidden = self._shared_prompt_hidden(input_ids, segment_ids, position_ids)
            return self._score(hidden, end_index)
        if right_padded is None:
            right_padded = is_right_padded(attention_mask)
        if right_padded:
            # Causal attention never lets a real token see the padding after it, so the hidden
            # states of real tokens are the same without the mask; sdpa then takes its causal
            # fast path instead of materialising a (B, 1, L, L) mask.
            out = self.backbone(input_ids=input_ids, use_cache=False)
        else:
            out = self.backbone(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask),
                use_cache=False,
            )
        return self._score(out.last_hidden_state, end_index_of(attention_mask))

    def _shared_prompt_hidden(
        self, input_ids: torch.Tensor, segment_ids: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor:
        """Last hidden states (B, L, H) of shared-prompt rows under their block-causal mask."""
        embeddings = input_embedding_matrix(self.backbone)
        mask = backbone_attention_mask(
            block_attention_mask(segment_ids),
            self.backbone.config._attn_implementation,
            embeddings.dtype,
        )  # (B, 1, L, L)
        out = self.backbone(
            input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False
        )
        return out.last_hidden_state

    def _score(self, hidden: torch.Tensor, end_index: torch.Tensor) -> ScoreOutput:
        """Scores at every position and at ``end_index`` (B,) or (B, K); updates the normalizer."""
        scores = self.score_head(hidden).float()  # (B, L, D)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        rows = rows if end_index.dim() == 1 else rows[:, None]  # broadcasts against (B, K)
        end_hidden = hidden[rows, end_index]  # (B, H) or (B, K, H)
        end_scores = scores[rows, end_index]  # (B, D) or (B, K, D)
        if self.training:
            self.normalizer.update(end_scores)
        if self.do_normalize:
            scores = self.normalizer.normalize(scores, self.score_type)
            end_scores = self.normalizer.normalize(end_scores, self.score_type)
        return ScoreOutput(scores, end_scores, hidden, end_hidden, end_index)

    def score_settings(self) -> dict[str, Any]:
        return {
            "score_type": self.score_type,
            "score_dim": self.score_head.out_features,
            "score_bias": True,
            "do_normalize": self.do_normalize,
            "normalizer_type": self.normalizer.kind,
            "momentum": self.normalizer.momentum,
            **self.normalizer.stats(),
        }

    def gradient_checkpointing_enable(self) -> None:
        self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
