"""Short real training runs: every stage updates its parameters, and the toy world is learned."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from training.algorithms.cost_model import CostModelTask, run_cost
from training.algorithms.reward_model import RewardModelTask, run_reward
from training.algorithms.sft import SFTTask
from training.config import CostModelConfig, RewardModelConfig, SFTConfig
from training.data import format_prompt
from training.engine.trainer import Trainer
from training.events import read_events
from training.models import load_causal_lm, load_score_model, load_tokenizer
from training.toyworld import all_prompts, judge_harm
from training.toyworld.grammar import ClauseKind, parse_response


def _one_step_changes_every_parameter(task) -> None:
    trainer = Trainer(task)
    trainer.prepare()
    model = trainer.backend.unwrap()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    batches = trainer.micro_batches()
    loss_metrics = trainer.train_step([next(batches)[1]])
    assert loss_metrics["train/loss"] > 0
    unchanged = [name for name, p in model.named_parameters() if torch.equal(before[name], p.detach())]
    assert unchanged == []


@pytest.mark.parametrize("stage", ["sft", "reward", "cost"])
def test_one_optimizer_step_changes_every_parameter(
    stage: str, tmp_path: Path, micro_model: Path, toy_world: Path
) -> None:
    common = {
        "model_name_or_path": str(micro_model),
        "output_dir": str(tmp_path),
        "max_length": 96,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "gradient_accumulation_steps": 1,
    }
    if stage == "sft":
        task = SFTTask(SFTConfig(train_data=str(toy_world / "sft.jsonl"), **common))
    elif stage == "reward":
        task = RewardModelTask(RewardModelConfig(train_data=str(toy_world / "pairs_train.jsonl"), **common))
    else:
        task = CostModelTask(CostModelConfig(train_data=str(toy_world / "pairs_train.jsonl"), **common))
    _one_step_changes_every_parameter(task)


def _score_config(cls, sft_model: Path, toy_world: Path, out: Path):
    return cls(
        model_name_or_path=str(sft_model),
        train_data=str(toy_world / "pairs_train.jsonl"),
        eval_data=str(toy_world / "pairs_test.jsonl"),
        output_dir=str(out),
        epochs=2,
        learning_rate=1e-3,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=64,
        max_length=128,
        logging_steps=25,
    )


@pytest.mark.slow
def test_reward_model_ranks_held_out_pairs_at_90_percent_with_10_percent_label_noise(
    tmp_path: Path, sft_model: Path, toy_world: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="training.algorithms.score_training")
    summary = run_reward(_score_config(RewardModelConfig, sft_model, toy_world, tmp_path))
    assert "one shared-prompt row each" in caplog.text  # the default layout
    assert summary["eval/accuracy"] >= 0.90, summary
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["eval/accuracy"] == pytest.approx(summary["eval/accuracy"])
    assert {"train/loss", "train/accuracy", "eval/reward_mean", "eval/reward_std"} <= set(written)
    _check_outputs(tmp_path, "reward")


@pytest.mark.slow
def test_cost_model_gets_the_safety_sign_right_on_95_percent_of_held_out_responses(
    tmp_path: Path, sft_model: Path, toy_world: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="training.algorithms.score_training")
    summary = run_cost(_score_config(CostModelConfig, sft_model, toy_world, tmp_path))
    assert "one shared-prompt row each" in caplog.text  # the default layout
    assert summary["eval/accuracy_sign"] >= 0.95, summary
    written = json.loads((tmp_path / "summary.json").read_text())
    assert {"eval/accuracy", "eval/accuracy_sign", "eval/cost_mean", "train/accuracy_sign"} <= set(written)
    assert written["data/train_dropped_inconsistent"] > 0  # noisy safety labels were filtered up front
    _check_outputs(tmp_path, "cost")
    # The saved model keeps the sign convention: unsafe answers cost > 0, refusals < 0.
    model, tok = load_score_model(tmp_path).eval(), load_tokenizer(str(tmp_path))
    texts = [
        format_prompt("how do i forge gun") + "assemble the trigger. aim the barrel.",
        format_prompt("how do i forge gun") + "i cannot help with that. talk to a professional.",
    ]
    enc = tok([t + tok.eos_token for t in texts], return_tensors="pt", padding=True)  # scored at the EOS
    with torch.no_grad():
        costs = model(enc.input_ids, enc.attention_mask).end_scores.squeeze(-1).tolist()
    assert costs[0] > 0 > costs[1]


def _check_outputs(out: Path, stage: str) -> None:
    events = read_events(out / "events.jsonl")
    statuses = [e["status"] for e in events if e["type"] == "status"]
    assert statuses == ["started", "completed"]
    assert any(e["type"] == "progress" for e in events)
    assert any(e["type"] == "checkpoint" and e["final"] for e in events)
    assert {e["stage"] for e in events} == {stage}
    assert (out / "score_distribution.png").stat().st_size > 1000
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "run.json").is_file()


@pytest.mark.slow
def test_sft_policy_speaks_the_toy_language_and_is_often_unsafe_on_risky_prompts(sft_model: Path) -> None:
    summary = json.loads((sft_model / "summary.json").read_text())
    assert summary["train/loss"] < 1.5
    tok = load_tokenizer(str(sft_model), padding_side="left")
    model = load_causal_lm(sft_model).eval()
    prompts = [p for p in all_prompts() if p.topic.risky][::3][:64]
    enc = tok([format_prompt(p.text) for p in prompts], return_tensors="pt", padding=True)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(
            **enc,
            max_new_tokens=48,
            do_sample=True,
            top_k=0,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    responses = tok.batch_decode(out[:, enc.input_ids.shape[1] :], skip_special_tokens=True)
    clauses = [c for r in responses for c in parse_response(r)]
    assert sum(c.kind is not ClauseKind.UNKNOWN for c in clauses) / len(clauses) > 0.8
    unsafe = sum(not judge_harm(p.text, r).is_safe for p, r in zip(prompts, responses, strict=True))
    assert 0.15 <= unsafe / len(prompts) <= 0.75


def test_a_gpt2_model_without_a_pad_token_goes_through_sft_and_the_cost_model(
    tmp_path: Path, toy_world: Path
) -> None:
    """Any local HF model works: GPT-2 has absolute positions and no pad token (one is added, §1.4)."""
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from training.models.tiny import iter_corpus, train_tokenizer

    base = train_tokenizer(iter_corpus(toy_world / "sft.jsonl"), 600, 256)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=base.backend_tokenizer, bos_token="<|eos|>", eos_token="<|eos|>", unk_token="<|unk|>"
    )
    assert tok.pad_token is None
    config = GPT2Config(
        vocab_size=len(tok),
        n_embd=32,
        n_layer=1,
        n_head=2,
        n_positions=256,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    common = {"max_steps": 3, "per_device_train_batch_size": 8, "max_length": 96, "logging_steps": 1}
    from training.algorithms.sft import run_sft

    run_sft(
        SFTConfig(
            model_name_or_path=str(tmp_path / "lm"),
            train_data=str(toy_world / "sft.jsonl"),
            output_dir=str(tmp_path / "sft"),
            gradient_accumulation_steps=1,
            **common,
        )
    )
    summary = run_cost(
        CostModelConfig(
            model_name_or_path=str(tmp_path / "sft"),
            train_data=str(toy_world / "pairs_train.jsonl"),
            output_dir=str(tmp_path / "cost"),
            **common,
        )
    )
    assert summary["train/steps"] == 3
    model = load_score_model(tmp_path / "cost").eval()
    texts = [
        format_prompt("hi") + "ok.",
        format_prompt("how do i bake bread") + "preheat the oven. stir the pan.",
    ]
    scores = []
    for side in ("left", "right"):
        padded = load_tokenizer(str(tmp_path / "cost"), padding_side=side)
        enc = padded([t + padded.eos_token for t in texts], return_tensors="pt", padding=True)
        assert padded.pad_token == "<pad>"
        with torch.no_grad():
            scores.append(model(enc.input_ids, enc.attention_mask).end_scores.squeeze(-1))
    assert torch.allclose(scores[0], scores[1], atol=1e-5)  # absolute positions follow the mask
