"""Models: the score model (reward, cost, critic), causal LMs, tokenizers and the tiny-model factory.

Entry points: :func:`load_score_model`, :func:`save_score_model`, :func:`load_causal_lm`,
:func:`load_tokenizer`, :class:`ScoreModel`, :class:`ScoreOutput`.
"""

from training.models.loading import check_model_dir, load_causal_lm, load_score_model, save_score_model
from training.models.normalizer import Normalizer
from training.models.score_model import (
    ScoreModel,
    ScoreOutput,
    end_index_of,
    is_right_padded,
    position_ids_from_mask,
)
from training.models.tokenizer import load_tokenizer, resize_embeddings_mean

__all__ = [
    "Normalizer",
    "ScoreModel",
    "ScoreOutput",
    "check_model_dir",
    "end_index_of",
    "is_right_padded",
    "load_causal_lm",
    "load_score_model",
    "load_tokenizer",
    "position_ids_from_mask",
    "resize_embeddings_mean",
    "save_score_model",
]
