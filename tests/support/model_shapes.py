"""Published config.json fields of real models, for tests that size a model without its weights."""

from __future__ import annotations

from typing import Any

LLAMA_2_7B: dict[str, Any] = {  # Llama-2-7B: the fields that size it (6.74B parameters)
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
}
