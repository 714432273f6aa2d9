"""init-tiny output, the score model (end score at the last attended token), saving and loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, LlamaForSequenceClassification

from training.data import PreferenceCollator, format_prompt, pad_sequences, tokenize
from training.models import (
    ScoreModel,
    end_index_of,
    load_score_model,
    load_tokenizer,
    save_score_model,
)
from training.models.normalizer import Normalizer


def test_init_tiny_writes_a_plain_hf_model_and_tokenizer(tiny_model: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.model_type == "llama"
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<|pad|>", "<|bos|>", "<|eos|>")
    assert model.config.pad_token_id == tok.pad_token_id and model.config.eos_token_id == tok.eos_token_id
    assert not getattr(tok, "chat_template", None)
    ids = tok("how do i bake bread").input_ids
    assert ids[0] == tok.bos_token_id  # BOS prepended like LLaMA
    assert tok.decode(ids, skip_special_tokens=True) == "how do i bake bread"
    assert (tiny_model / "model.safetensors").is_file()
    summary = json.loads((tiny_model / "summary.json").read_text())
    assert 300_000 < summary["parameters"] < 2_000_000


def test_init_tiny_cli_reports_a_missing_corpus(tmp_path: Path, cli) -> None:
    done = cli(["init-tiny", "--out", str(tmp_path / "m"), "--corpus", str(tmp_path / "nope.jsonl")])
    assert done.returncode == 2
    assert "corpus file not found" in done.stderr and "Traceback" not in done.stderr


def test_init_tiny_cli_builds_the_requested_shape(tmp_path: Path, toy_world: Path, cli) -> None:
    done = cli(
        [
            "init-tiny",
            "--out",
            str(tmp_path / "m"),
            "--corpus",
            str(toy_world / "sft.jsonl"),
            "--layers",
            "3",
            "--hidden",
            "64",
        ]
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == (3, 64)


@pytest.fixture(scope="module")
def score_model(tiny_model: Path) -> ScoreModel:
    torch.manual_seed(0)
    return load_score_model(tiny_model).eval()


def test_end_index_is_the_last_attended_position() -> None:
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert end_index_of(mask).tolist() == [2, 4, 4]


def test_end_score_is_the_same_with_left_and_right_padding(score_model: ScoreModel, tiny_model: Path) -> None:
    tok = load_tokenizer(str(tiny_model))
    texts = [format_prompt("how do i bake bread") + "preheat the oven.", format_prompt("hi") + "ok."]
    seqs = tokenize(tok, texts, 64, add_eos=True)
    with torch.no_grad():
        alone = [
            float(score_model(s[None], torch.ones(1, len(s), dtype=torch.long)).end_scores) for s in seqs
        ]
        right = score_model(
            pad_sequences(seqs, tok.pad_token_id, "right"),
            pad_sequences([torch.ones(len(s), dtype=torch.long) for s in seqs], 0, "right"),
        )
        left = score_model(
            pad_sequences(seqs, tok.pad_token_id, "left"),
            pad_sequences([torch.ones(len(s), dtype=torch.long) for s in seqs], 0, "left"),
        )
    assert right.end_scores.squeeze(-1).tolist() == pytest.approx(alone, abs=1e-5)
    assert left.end_scores.squeeze(-1).tolist() == pytest.approx(alone, abs=1e-5)
    # ... and it is read at the EOS token, the last real token of each row.
    assert left.end_index.tolist() == [left.scores.shape[1] - 1] * 2
    assert right.end_index.tolist() == [len(s) - 1 for s in seqs]


def test_the_fast_path_for_right_padding_matches_the_masked_forward(
    score_model: ScoreModel, tiny_model: Path
) -> None:
    tok = load_tokenizer(str(tiny_model))
    items = [
        {"better_input_ids": s, "worse_input_ids": s[:-2]}
        for s in tokenize(tok, ["a b c d e f", "g h"], 32, add_eos=True)
    ]
    batch = PreferenceCollator(tok.pad_token_id)(items)
    with torch.no_grad():
        fast = score_model(batch["input_ids"], batch["attention_mask"], right_padded=True)
        masked = score_model(batch["input_ids"], batch["attention_mask"], right_padded=False)
    assert torch.allclose(fast.end_scores, masked.end_scores, atol=1e-5)


def test_score_model_round_trips_through_save_pretrained(tmp_path: Path, tiny_model: Path) -> None:
    model = load_score_model(tiny_model, score_type="cost", normalizer_type="ExponentialMovingAverage")
    model.train()
    ids = torch.randint(4, 500, (6, 12))
    model(ids, torch.ones_like(ids))  # train mode updates the normalizer
    save_score_model(model, tmp_path)
    assert {"model.safetensors", "score_head.safetensors", "config.json"} <= {
        p.name for p in tmp_path.iterdir()
    }
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))
    settings = json.loads((tmp_path / "config.json").read_text())["score_model"]
    assert settings["score_type"] == "cost" and settings["count"] == 6.0
    loaded = load_score_model(tmp_path).eval()
    model.eval()
    with torch.no_grad():
        assert torch.equal(
            loaded(ids, torch.ones_like(ids)).end_scores, model(ids, torch.ones_like(ids)).end_scores
        )
    assert loaded.score_type == "cost"
    assert torch.equal(loaded.normalizer.mean, model.normalizer.mean)
    assert isinstance(AutoModel.from_pretrained(tmp_path), torch.nn.Module)  # the backbone stays plain HF


def test_a_critic_can_start_from_a_saved_reward_model(tmp_path: Path, tiny_model: Path) -> None:
    save_score_model(load_score_model(tiny_model), tmp_path)
    critic = load_score_model(tmp_path, score_type="critic", do_normalize=True)
    assert critic.score_type == "critic" and not critic.do_normalize


def test_sequence_classification_head_is_adopted(tmp_path: Path, tiny_model: Path) -> None:
    seqcls = LlamaForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    torch.nn.init.normal_(seqcls.score.weight)
    seqcls.save_pretrained(tmp_path)
    model = load_score_model(tmp_path)
    assert torch.equal(model.score_head.weight, seqcls.score.weight)
    assert float(model.score_head.bias.detach()) == 0.0


def test_missing_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    from training.errors import ConfigError

    with pytest.raises(ConfigError, match="models are never downloaded"):
        load_score_model(tmp_path / "nope")


def test_normalizer_reward_is_affine_and_cost_is_scale_only() -> None:
    norm = Normalizer("RunningMeanStd")
    data = torch.tensor([[1.0], [3.0], [5.0], [7.0]])
    norm.update(data[:2])
    norm.update(data[2:])
    assert float(norm.mean) == pytest.approx(4.0) and float(norm.var) == pytest.approx(5.0)
    x = torch.tensor([-2.0, 2.0])
    std = 5.0**0.5
    assert norm.normalize(x, "reward").tolist() == pytest.approx([(-2 - 4) / std, (2 - 4) / std], abs=1e-6)
    assert norm.normalize(x, "cost").tolist() == pytest.approx([-2 / std, 2 / std], abs=1e-6)  # sign kept
    assert norm.normalize(x, "critic").tolist() == [-2.0, 2.0]
    ema = Normalizer("ExponentialMovingAverage", momentum=0.9)
    ema.update(torch.tensor([[2.0], [4.0]]))
    assert float(ema.mean) == pytest.approx(0.1 * 3.0) and float(ema.var) == pytest.approx(0.9 + 0.1 * 1.0)
