"""Rollout mechanics (docs/design/method.md §5.2, §12.3): masks after the EOS, explicit position ids
under left padding, KV-cache log-probs equal to a full forward pass, and the length budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from training.algorithms import rollout as rollout_module
from training.algorithms.rl_data import PromptSource
from training.algorithms.rollout import SamplingSettings, generate, response_log_probs, sample_tokens
from training.models import load_tokenizer

EOS, PAD = 2, 0


def _gpt2() -> GPT2LMHeadModel:
    """Absolute position embeddings: any position shift from left padding changes the outputs."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=40,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        eos_token_id=EOS,
        pad_token_id=PAD,
        attn_pdrop=0.0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
    )
    return GPT2LMHeadModel(config).eval()


def _llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=40,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=64,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    return LlamaForCausalLM(config).eval()


def _left_padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    return ids, mask


def test_masks_keep_the_first_eos_and_drop_everything_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    script = iter([[5, 7, EOS], [EOS, 8, 9], [6, 9, 9], [9, 9, 9]])  # step -> token per row

    def scripted(logits: torch.Tensor, settings: SamplingSettings) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(next(script)), torch.full((logits.shape[0],), -1.0)

    monkeypatch.setattr(rollout_module, "sample_tokens", scripted)
    ids, mask = _left_padded([[3, 4, 5], [4, 5], [5]])
    out = generate(_llama(), ids, mask, SamplingSettings(max_new_tokens=4), [EOS], PAD)
    assert out.response_ids.tolist() == [[5, EOS, PAD, PAD], [7, 8, 9, 9], [EOS, PAD, PAD, PAD]]
    assert out.response_mask.long().tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert out.log_probs.tolist() == [[-1, -1, 0, 0], [-1, -1, -1, -1], [-1, 0, 0, 0]]
    assert out.attention_mask[:, : out.prompt_width].tolist() == mask.tolist()


def test_a_sampled_pad_or_unk_token_stays_a_kept_action(monkeypatch: pytest.MonkeyPatch) -> None:
    """§12.3: the mask comes from positions, not token identity (the reference drops pad/unk ids)."""
    script = iter([[PAD], [1], [EOS]])
    monkeypatch.setattr(
        rollout_module, "sample_tokens", lambda logits, s: (torch.tensor(next(script)), torch.zeros(1))
    )
    out = generate(
        _llama(),
        torch.tensor([[3, 4]]),
        torch.ones(1, 2, dtype=torch.long),
        SamplingSettings(max_new_tokens=5),
        [EOS],
        PAD,
    )
    assert out.response_ids.tolist() == [[PAD, 1, EOS]]
    assert out.response_mask.all()


@pytest.mark.parametrize("build", [_gpt2, _llama])
def test_left_padding_with_explicit_positions_matches_unpadded_rows(build) -> None:
    """Greedy generation and training log-probs of a left-padded batch equal each row alone."""
    model = build()
    prompts = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
    ids, mask = _left_padded(prompts)
    settings = SamplingSettings(max_new_tokens=6, temperature=0.0)
    batch = generate(model, ids, mask, settings, [EOS], PAD)
    with torch.no_grad():
        full = response_log_probs(model, batch.input_ids, batch.attention_mask, batch.prompt_width)
    kept = batch.response_mask
    assert torch.allclose(full * kept, batch.log_probs, atol=1e-5)  # KV cache == one full forward
    for i, prompt in enumerate(prompts):
        alone = generate(
            model, torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.long), settings, [EOS], PAD
        )
        n = int(alone.response_mask.sum())
        assert batch.response_ids[i, :n].tolist() == alone.response_ids[0, :n].tolist()
        assert torch.allclose(batch.log_probs[i, :n], alone.log_probs[0, :n], atol=1e-5)


def test_left_padding_without_position_ids_would_change_an_absolute_position_model() -> None:
    """Why the position ids matter: GPT-2 reads a different position embedding when shifted."""
    model = _gpt2()
    ids, mask = _left_padded([[3, 4, 5, 6, 7], [8, 9]])
    with torch.no_grad():
        explicit = response_log_probs(model, ids, mask, prompt_width=1)[1, -1]
        implicit = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[1, -2], -1)[ids[1, -1]]
    alone = response_log_probs(model, torch.tensor([[8, 9]]), torch.ones(1, 2, dtype=torch.long), 1)[0, -1]
    assert explicit.item() == pytest.approx(alone.item(), abs=1e-5)
    assert abs(implicit.item() - alone.item()) > 1e-3


def test_generation_stops_at_the_token_budget_and_early_when_all_rows_ended() -> None:
    model = _llama()
    ids, mask = _left_padded([[3, 4], [5]])
    out = generate(model, ids, mask, SamplingSettings(max_new_tokens=7), [EOS], PAD)
    assert out.response_ids.shape[1] <= 7
    forced = generate(model, ids, mask, SamplingSettings(max_new_tokens=7), list(range(40)), PAD)
    assert forced.response_ids.shape[1] == 1  # every token is an EOS: one step, then stop


def test_top_p_samples_only_from_the_nucleus() -> None:
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(2000, 1)
    tokens, log_probs = sample_tokens(logits, SamplingSettings(1, temperature=1.0, top_p=0.7))
    assert set(tokens.tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.7; 0.15 and 0.05 are cut
    assert torch.allclose(log_probs, logits.log_softmax(-1).gather(1, tokens[:, None]).squeeze(1))


def test_prompts_over_the_length_budget_are_dropped_and_counted(micro_model: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(str(micro_model), padding_side="left")
    rows = [{"prompt": "how do i bake bread"}, {"prompt": "how do i bake bread " + "very " * 40}]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    budget = len(tokenizer("BEGINNING OF CONVERSATION: USER: how do i bake bread ASSISTANT:").input_ids) + 2
    source = PromptSource(str(path), tokenizer, max_prompt_length=budget)
    assert len(source) == 1 and source.dropped == 1
    batch = source.batch([0])
    assert batch["input_ids"].shape[1] <= budget
