"""The shared-prompt layout of preference pairs: one row [prompt, first, second] per pair.

Exactness against the two-row layout (end scores, per-token scores of every response token,
losses and gradients, fp32) on tiny Llama (RoPE, grouped-query attention) and GPT-2 (absolute
positions) backbones with the sdpa and eager attention implementations; right padding, responses
of different lengths, a response that is a prefix of the other and truncated pairs. Then the stage
path, and the two-row fallbacks with their logged reasons.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2Model, LlamaConfig, LlamaModel

from training.algorithms.cost_model import CostModelTask
from training.algorithms.losses import cost_loss, reward_loss
from training.algorithms.reward_model import RewardModelTask
from training.algorithms.score_layout import model_reason, probe_mismatch
from training.config import CostModelConfig, RewardModelConfig
from training.data import (
    PreferenceCollator,
    PreferenceDataset,
    SharedPromptSafetyPreferenceCollator,
    common_prefix_length,
    shared_prompt_batch,
    shared_prompt_inputs,
)
from training.engine.trainer import Trainer
from training.models import ScoreModel
from training.models.shared_prompt import block_attention_mask

MAX_LENGTH = 14
PAD = 0


def _backbone(kind: str, attn: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "llama":
        config = LlamaConfig(
            vocab_size=97,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
        )
        backbone = LlamaModel(config)
    else:
        config = GPT2Config(
            vocab_size=97,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=MAX_LENGTH,
            bos_token_id=1,
            eos_token_id=2,
        )
        config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0
        backbone = GPT2Model(config)
    backbone.config._attn_implementation = attn
    return backbone


def _pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(prompt length, first length, second length) -> ids truncated to MAX_LENGTH like the datasets."""
    generator = torch.Generator().manual_seed(1)
    shapes = [(5, 3, 6), (2, 4, 1), (6, 1, 1), (4, 7, 2), (10, 6, 2), (12, 5, 9), (1, 2, 2)]
    pairs = []
    for n_prompt, n_first, n_second in shapes:
        prompt = torch.randint(3, 97, (n_prompt,), generator=generator)
        first = torch.cat([prompt, torch.randint(3, 97, (n_first,), generator=generator)])
        second = torch.cat([prompt, torch.randint(3, 97, (n_second,), generator=generator)])
        pairs.append((first[:MAX_LENGTH], second[:MAX_LENGTH]))
    # A response that is a prefix of the other: each still keeps its own last token.
    pairs.append((pairs[0][0], pairs[0][0][:-2]))
    return pairs


def _both_layouts(model: ScoreModel, pairs: list) -> dict[str, dict[str, torch.Tensor]]:
    """End scores (2B,), per-token response scores and loss + gradients, in both layouts."""
    firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
    prefixes = [common_prefix_length(a, b) for a, b in pairs]
    is_safe = torch.tensor([True, False] * len(pairs))[: 2 * len(pairs)]  # (2B,)
    half = len(pairs)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for layout in ("two_row", "shared"):
        model.zero_grad()
        if layout == "two_row":
            batch = PreferenceCollator(PAD)([{"better_input_ids": a, "worse_input_ids": b} for a, b in pairs])
            result = model(batch["input_ids"], batch["attention_mask"], right_padded=True)
            end = result.end_scores.squeeze(-1)  # (2B,)
            scores = result.scores.squeeze(-1)  # (2B, L)
            tokens = [scores[i, : len(a)] for i, a in enumerate(firsts)]
            tokens += [
                scores[half + i, p : len(b)] for i, (b, p) in enumerate(zip(seconds, prefixes, strict=True))
            ]
        else:
            batch = shared_prompt_batch(firsts, seconds, prefixes, PAD)
            result = model(
                batch["input_ids"],
                batch["attention_mask"],
                **shared_prompt_inputs(batch),
            )
            end = result.end_scores.squeeze(-1).t().reshape(-1)  # (B, 2) -> (2B,)
            scores = result.scores.squeeze(-1)  # (B, L)
            tokens = [scores[i, : len(a)] for i, a in enumerate(firsts)]
            tokens += [
                scores[i, len(a) : len(a) + len(b) - p]
                for i, (a, b, p) in enumerate(zip(firsts, seconds, prefixes, strict=True))
            ]
        loss = reward_loss(end[:half], end[half:], 0.01) + cost_loss(
            end[:half], end[half:], is_safe[:half], is_safe[half:], 0.01
        )
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        out[layout] = {
            "end": end.detach(),
            "tokens": torch.cat(tokens).detach(),
            "loss": loss.detach(),
            **grads,
        }
    return out


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_shared_layout_equals_two_rows_in_scores_losses_and_gradients(kind: str, attn: str) -> None:
    model = ScoreModel(_backbone(kind, attn)).eval()
    pairs = _pairs()
    assert any(len(a) == MAX_LENGTH for a, _ in pairs) and any(len(b) == MAX_LENGTH for _, b in pairs)
    got = _both_layouts(model, pairs)
    two_row, shared = got["two_row"], got["shared"]
    assert set(two_row) == set(shared) and len(two_row) == len(list(model.parameters())) + 3
    for key, want in two_row.items():
        assert torch.allclose(shared[key], want, rtol=1e-5, atol=1e-5), (
            key,
            (shared[key] - want).abs().max(),
        )
    assert float(two_row["end"].abs().max()) > 1e-3  # the comparison is not between zeros


def test_block_mask_hides_the_first_response_and_padding_from_the_second() -> None:
    first, second = torch.tensor([5, 6, 7, 8]), torch.tensor([5, 6, 9])
    other = (torch.tensor([5, 6, 7, 8, 10, 11]), torch.tensor([5, 6, 7, 8, 10, 12]))
    batch = shared_prompt_batch([first, other[0]], [second, other[1]], [2, 5], PAD)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 0, 0], [5, 6, 7, 8, 10, 11, 12]]
    assert batch["segment_ids"][0].tolist() == [0, 0, 1, 1, 2, 3, 3]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 2, 0, 0], [0, 1, 2, 3, 4, 5, 5]]
    assert batch["end_index"].tolist() == [[3, 4], [5, 6]]
    assert batch["sequence_lengths"].tolist() == [[4, 3], [6, 6]]
    assert batch["attention_mask"].sum().item() == 5 + 7
    allowed = block_attention_mask(batch["segment_ids"])[0, 0].int()  # (L, L) of the first pair
    assert allowed.tolist() == [
        [1, 0, 0, 0, 0, 0, 0],  # prompt: causal over the prompt
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],  # first response: prompt + itself
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 1, 0, 0],  # second response: prompt + itself, never the first
        [1, 1, 0, 0, 0, 1, 0],  # padding: itself (and what it may see), never seen by real tokens
        [1, 1, 0, 0, 0, 1, 1],
    ]


def test_common_prefix_leaves_each_sequence_its_last_token() -> None:
    a = torch.tensor([1, 2, 3, 4])
    assert common_prefix_length(a, torch.tensor([1, 2, 9])) == 2
    assert common_prefix_length(a, a[:3]) == 2  # a prefix of the other keeps its EOS position
    assert common_prefix_length(a, torch.tensor([7, 2, 3])) == 0


def _task_config(cls, model: Path, data: Path, out: Path, **extra):
    return cls(
        model_name_or_path=str(model),
        train_data=str(data / "pairs_train.jsonl"),
        output_dir=str(out),
        max_length=24,  # truncates most toy pairs: the prompt alone is about 15 tokens
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        group_by_length=False,  # the same pairs in the first batch for both layouts
        regularization=0.01,
        **extra,
    )


@pytest.mark.parametrize(
    "task_cls,config_cls", [(RewardModelTask, RewardModelConfig), (CostModelTask, CostModelConfig)]
)
def test_a_stage_step_in_the_shared_layout_equals_the_two_row_step(
    task_cls, config_cls, tmp_path: Path, micro_model: Path, toy_world: Path
) -> None:
    results = {}
    for shared in (True, False):
        task = task_cls(
            _task_config(config_cls, micro_model, toy_world, tmp_path / str(shared), shared_prompt=shared)
        )
        trainer = Trainer(task)
        trainer.prepare()
        assert task.shared_prompt is shared
        batch = next(trainer.micro_batches())[1]
        assert ("segment_ids" in batch) is shared
        if shared:
            assert (batch["sequence_lengths"] == 24).any()  # truncated pairs are in the batch
            assert isinstance(task.collate, type(task.shared_prompt_collator(0)))
        metrics = trainer.train_step([batch])
        params = {n: p.detach().clone() for n, p in trainer.backend.unwrap().named_parameters()}
        results[shared] = (metrics, params)
    (shared_metrics, shared_params), (two_metrics, two_params) = results[True], results[False]
    for key in ("train/loss", "train/accuracy", "train/grad_norm"):
        assert shared_metrics[key] == pytest.approx(two_metrics[key], rel=1e-5, abs=1e-6), key
    for name, value in two_params.items():
        assert torch.allclose(shared_params[name], value, atol=1e-6), name


def test_shared_lengths_group_by_the_one_row(tmp_path: Path, micro_model: Path, toy_world: Path) -> None:
    from training.models import load_tokenizer

    ds = PreferenceDataset(str(toy_world / "pairs_test.jsonl"), load_tokenizer(str(micro_model)), 128)
    item = ds[0]
    assert (
        item["prefix_length"] == common_prefix_length(item["better_input_ids"], item["worse_input_ids"]) > 10
    )
    assert ds.lengths == ds.two_row_lengths
    ds.use_shared_prompt(True)
    assert (
        ds.lengths[0] == len(item["better_input_ids"]) + len(item["worse_input_ids"]) - item["prefix_length"]
    )
    # Every logical token is still counted once per sequence: the prompt twice, as two rows do.
    batch = SharedPromptSafetyPreferenceCollator(0)(
        [
            {
                **item,
                "safer_input_ids": item["better_input_ids"],
                "unsafer_input_ids": item["worse_input_ids"],
                "is_safer_safe": True,
                "is_unsafer_safe": False,
            }
        ]
    )
    assert batch["is_safe"].tolist() == [True, False]
    assert int(batch["sequence_lengths"].sum()) == len(item["better_input_ids"]) + len(
        item["worse_input_ids"]
    )


def test_token_wise_loss_trains_in_two_rows_and_says_why(
    tmp_path: Path, micro_model: Path, toy_world: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="training.algorithms.score_training")
    for task_cls, config_cls in ((RewardModelTask, RewardModelConfig), (CostModelTask, CostModelConfig)):
        config = _task_config(
            config_cls, micro_model, toy_world, tmp_path / task_cls.stage, loss_type="token-wise"
        )
        trainer = Trainer(task_cls(config))
        trainer.prepare()
        assert not trainer.task.shared_prompt
        metrics = trainer.train_step([next(trainer.micro_batches())[1]])
        assert metrics["train/loss"] > 0
    assert "two rows each: the token-wise loss" in caplog.text


class _PositionBlindLlama(LlamaModel):
    """A decoder that accepts position_ids but ignores them (as a remote-code model might)."""

    def forward(self, *args, position_ids=None, **kwargs):  # type: ignore[no-untyped-def]
        return super().forward(*args, **kwargs)


def test_backbones_that_cannot_take_the_layout_fall_back_with_a_reason() -> None:
    llama = ScoreModel(_backbone("llama", "sdpa"))
    assert model_reason(llama, MAX_LENGTH) is None
    assert model_reason(ScoreModel(_backbone("gpt2", "eager")), MAX_LENGTH) is None
    llama.backbone.config._attn_implementation = "flash_attention_2"
    assert "no dense 4D mask" in model_reason(llama, MAX_LENGTH)
    blind = ScoreModel(_PositionBlindLlama(_backbone("llama", "sdpa").config))
    assert "differ from the sequences alone" in probe_mismatch(blind)
    window = _backbone("llama", "sdpa")
    window.config.sliding_window = 8
    assert "sliding window 8 < max_length 14" in model_reason(ScoreModel(window), MAX_LENGTH)
