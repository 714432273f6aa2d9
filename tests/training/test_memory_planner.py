"""The memory planner (``python -m training plan``) against DeepSpeed's own estimators, on a 7B
Llama built from its published shape (no weights, nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.model_shapes import LLAMA_2_7B
from tests.training.conftest import run_cli
from training.planning.memory import trained_memory
from training.planning.shapes import Shape


@pytest.fixture
def run_7b(tmp_path: Path) -> Path:
    model = tmp_path / "llama-7b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(LLAMA_2_7B))
    run = tmp_path / "run.json"
    paths = {
        "model_name_or_path": str(model),
        "reward_model_name_or_path": str(model),
        "cost_model_name_or_path": str(model),
    }
    run.write_text(json.dumps({**paths, "train_data": "prompts.jsonl", "output_dir": "out"}))
    return run


def test_parameter_counts_from_the_shape_match_the_built_models() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    assert Shape.from_config(LLAMA_2_7B).causal_lm() == 6_738_415_616  # Llama-2-7B's published count
    small = {**LLAMA_2_7B, "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2}
    small.update(num_attention_heads=4, num_key_value_heads=2, vocab_size=300)
    model = LlamaForCausalLM(LlamaConfig(**small))
    assert Shape.from_config(small).causal_lm() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("stage", "offload"), [(2, "none"), (2, "optimizer"), (3, "none"), (3, "optimizer"), (3, "all")]
)
def test_trained_network_estimate_is_within_ten_percent_of_deepspeeds_for_a_7b_llama(
    stage: int, offload: str
) -> None:
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    shape = Shape.from_config(LLAMA_2_7B)
    params, largest, gpus = shape.causal_lm(), shape.largest_module(), 8
    ours = trained_memory(params, largest, stage=stage, offload=offload, gpus=gpus)
    if stage == 2:
        _, theirs = estimate_zero2_model_states_mem_needs(
            params, num_gpus_per_node=gpus, cpu_offload=offload != "none"
        )
    else:
        _, theirs, _ = estimate_zero3_model_states_mem_needs(
            params,
            largest,
            num_gpus_per_node=gpus,
            cpu_offload=offload != "none",
            cpu_offload_params=offload == "all",
        )
    assert ours.model + ours.optimizer == pytest.approx(theirs, rel=0.10)


def test_plan_for_7b_ppo_lag_on_eight_80gb_gpus_recommends_a_setting_that_fits(run_7b: Path) -> None:
    done = run_cli(["plan", "--config", str(run_7b), "--gpus", "8", "--gpu-memory", "80GB"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ppo-lag: 6 networks")
    header = lines[1].split()
    for column in ("actor", "reward_critic", "cost_critic", "reference", "reward_model", "cost_model"):
        assert column in header
    assert len([line for line in lines if line.split()[:1] in (["0"], ["1"], ["2"], ["3"])]) == 8
    assert lines[-1].startswith("recommended: zero_stage=3 offload=none")
    assert "<- recommended" in done.stdout


def test_plan_that_cannot_fit_is_refused_with_exit_2_and_one_line(run_7b: Path) -> None:
    done = run_cli(["plan", "--config", str(run_7b), "--gpus", "1", "--gpu-memory", "16GB"])
    assert done.returncode == 2
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(
        "error: no ZeRO stage or offload fits ppo-lag on 1 x 16GB"
    )


def test_plan_with_a_missing_model_config_is_a_one_line_error(tmp_path: Path) -> None:
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"model_name_or_path": str(tmp_path / "nowhere")}))
    done = run_cli(["plan", "--config", str(run), "--gpus", "8", "--gpu-memory", "80GB"])
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: no config.json in model directory {tmp_path / 'nowhere'}"


def test_a_stage_refuses_a_setting_whose_model_states_cannot_fit_and_names_one_that_would(
    run_7b: Path,
) -> None:
    from training.errors import ConfigError
    from training.planning.check import ensure_fits

    config = json.loads(run_7b.read_text())
    gib = 2**30
    with pytest.raises(ConfigError, match=r"^ppo-lag cannot fit: .* zero_stage=2 offload=none on 8 GPU\(s\)"):
        ensure_fits("ppo-lag", {**config, "zero_stage": 2}, gpus=8, gpu_memory=80 * gib)
    with pytest.raises(ConfigError, match="zero_stage=3 offload=none would fit"):
        ensure_fits("ppo-lag", {**config, "zero_stage": 2}, gpus=8, gpu_memory=80 * gib)
    ensure_fits("ppo-lag", {**config, "zero_stage": 3}, gpus=8, gpu_memory=80 * gib)  # fits: no error
    with pytest.raises(ConfigError, match="no ZeRO stage or offload fits: add GPUs"):
        ensure_fits("ppo-lag", {**config, "zero_stage": 3, "offload": "all"}, gpus=1, gpu_memory=12 * gib)


def test_a_model_the_planner_cannot_size_is_not_refused(tmp_path: Path) -> None:
    from training.planning.check import ensure_fits

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 768}))
    ensure_fits("sft", {"model_name_or_path": str(tmp_path)}, gpus=1, gpu_memory=2**30)
