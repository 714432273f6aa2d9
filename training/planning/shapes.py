"""Parameter counts of decoder-only transformers from their ``config.json`` alone (no weights).

Covers the Llama family (Llama, Mistral, Qwen2, Gemma-like fields): embeddings, per layer the
attention projections (grouped-query heads included) and the gated MLP, norms and the LM head
(unless tied). A score model (reward, cost, critic) is the backbone without the LM head plus a
one-output head. Counting from the shape lets the planner size a 7B run without downloading it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import ConfigError


@dataclass(frozen=True)
class Shape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    qkv_bias: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Shape:
        try:
            hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
            return cls(
                hidden=hidden,
                intermediate=int(config["intermediate_size"]),
                layers=int(config["num_hidden_layers"]),
                heads=heads,
                kv_heads=int(config.get("num_key_value_heads") or heads),
                head_dim=int(config.get("head_dim") or hidden // heads),
                vocab=int(config["vocab_size"]),
                tied=bool(config.get("tie_word_embeddings", False)),
                qkv_bias=bool(config.get("attention_bias", False)) or config.get("model_type") == "qwen2",
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"config.json lacks a decoder-only transformer's shape field: {exc}") from exc

    @property
    def embedding(self) -> int:
        return self.vocab * self.hidden

    @property
    def layer(self) -> int:
        q = self.hidden * self.heads * self.head_dim
        kv = 2 * self.hidden * self.kv_heads * self.head_dim
        o = self.heads * self.head_dim * self.hidden
        bias = (self.heads + 2 * self.kv_heads) * self.head_dim if self.qkv_bias else 0
        mlp = 3 * self.hidden * self.intermediate
        return q + kv + o + bias + mlp + 2 * self.hidden  # two RMSNorm weights

    def backbone(self) -> int:
        return self.embedding + self.layers * self.layer + self.hidden  # + the final norm

    def causal_lm(self) -> int:
        return self.backbone() + (0 if self.tied else self.embedding)

    def score_model(self) -> int:
        return self.backbone() + self.hidden + 1  # one-output score head with bias

    def largest_module(self) -> int:
        """Parameters of the largest single module, as DeepSpeed's ZeRO-3 estimate counts it (the
        buffer a gather of one module needs): the embedding (or LM head), or an MLP projection."""
        return max(self.embedding, self.hidden * self.intermediate)


def load_shape(model_dir: str) -> Shape:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"no config.json in model directory {model_dir}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"unreadable config.json in {model_dir}: {exc}") from exc
    return Shape.from_config(config)
