"""Config of ``init-tiny``: a byte-level BPE tokenizer and a random Llama-style causal LM."""

from __future__ import annotations

from dataclasses import dataclass

from training.config.base import check, opt


@dataclass(frozen=True, kw_only=True)
class InitTinyConfig:
    out: str = opt(help="output directory for the HF model and tokenizer")
    corpus: str = opt(help="text corpus for the tokenizer: .txt (one text per line) or .jsonl (text fields)")
    layers: int = opt(2, "number of decoder layers")
    hidden: int = opt(128, "hidden size")
    heads: int = opt(4, "attention heads")
    kv_heads: int = opt(0, "key/value heads for grouped-query attention (0: same as heads)")
    intermediate: int = opt(0, "MLP width (0: 4 x hidden)")
    vocab_size: int = opt(1024, "BPE vocabulary size (special tokens included)")
    max_position_embeddings: int = opt(512, "longest sequence the model accepts")
    seed: int = opt(0, "seed of the random initialisation")

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "heads", "max_position_embeddings"):
            check(getattr(self, name) >= 1, f"{name} must be at least 1")
        check(self.hidden % self.heads == 0, "hidden must be divisible by heads")
        kv = self.kv_heads or self.heads
        check(self.heads % kv == 0, "heads must be divisible by kv_heads")
        check(self.intermediate >= 0, "intermediate must not be negative")
        check(self.vocab_size >= 300, "vocab_size must be at least 300 (256 bytes plus specials and merges)")
