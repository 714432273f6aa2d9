"""``init-tiny``: train a byte-level BPE tokenizer on a corpus and build a random Llama-style LM.

Both are saved in HF format (tokenizer.json + config.json + model.safetensors), so the result works
anywhere a downloaded model directory would. The tokenizer prepends BOS like LLaMA's (spec §1.4),
has pad/bos/eos/unk set and no chat template (the Safe RLHF template is plain text, §1.3).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedModel, PreTrainedTokenizerFast

from training.config import InitTinyConfig
from training.data.template import format_prompt
from training.engine.lifecycle import StageRun
from training.errors import DataError
from training.models.embeddings import input_embedding_matrix

logger = logging.getLogger(__name__)

PAD, BOS, EOS, UNK = "<|pad|>", "<|bos|>", "<|eos|>", "<|unk|>"
TEXT_KEYS = ("prompt", "response", "response_0", "response_1", "text", "input", "answer", "output")


def iter_corpus(path: str | Path) -> Iterator[str]:
    """Texts of a .txt (one per line) or .jsonl corpus; JSON prompts are also seen templated."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"corpus file not found: {p}")
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if p.suffix != ".jsonl":
                yield line
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{p}:{lineno}: not valid JSON") from None
            if isinstance(row, dict):
                yield from (str(row[k]) for k in TEXT_KEYS if isinstance(row.get(k), str))
                if isinstance(row.get("prompt"), str):
                    yield format_prompt(row["prompt"]) + str(row.get("response", row.get("response_0", "")))


def train_tokenizer(texts: Iterator[str], vocab_size: int, model_max_length: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
            ),
        ]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=model_max_length,
        padding_side="right",
    )


def build_model(config: InitTinyConfig, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden,
        intermediate_size=config.intermediate or 4 * config.hidden,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads or config.heads,
        max_position_embeddings=config.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        attention_dropout=0.0,
    )
    torch.manual_seed(config.seed)
    model: PreTrainedModel = AutoModelForCausalLM.from_config(llama, dtype=torch.float32)
    return model


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    embed = input_embedding_matrix(model).numel()
    return {"parameters": total, "non_embedding_parameters": total - embed}


def run_init_tiny(config: InitTinyConfig) -> dict[str, Any]:
    """Build the model into ``config.out``; its ``events.jsonl`` there holds the run's status events."""
    with StageRun.open(config.out, "init-tiny") as run:
        summary = _init_tiny(config)
        run.done_message = f"tiny model with {summary['parameters']} parameters written"
    return summary


def _init_tiny(config: InitTinyConfig) -> dict[str, Any]:
    tokenizer = train_tokenizer(iter_corpus(config.corpus), config.vocab_size, config.max_position_embeddings)
    model = build_model(config, tokenizer)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary = {"vocab_size": len(tokenizer), **count_parameters(model), "output_dir": str(out)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    logger.info("tiny model written to %s: %s", out, summary)
    return summary
