"""The stage CLI: clear one-line errors for user mistakes, documented configs, the event schema."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from training.config import CostModelConfig, RewardModelConfig, SFTConfig, load_config, parse_overrides
from training.errors import ConfigError
from training.events import EventWriter, read_events
from training.stages import STAGES


def _common(tmp_path: Path, model: Path, data: Path) -> list[str]:
    return [f"--model_name_or_path={model}", f"--train_data={data}", f"--output_dir={tmp_path / 'out'}"]


def assert_clean_error(done, *fragments: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr


def test_unknown_option_is_named_with_a_suggestion(
    tmp_path: Path, micro_model: Path, toy_world: Path, cli
) -> None:
    done = cli(
        ["reward", *_common(tmp_path, micro_model, toy_world / "pairs_train.jsonl"), "--learnig_rate=1"]
    )
    assert_clean_error(done, "unknown option 'learnig_rate'", "did you mean 'learning_rate'")


def test_bad_value_is_named(tmp_path: Path, micro_model: Path, toy_world: Path, cli) -> None:
    done = cli(["cost", *_common(tmp_path, micro_model, toy_world / "pairs_train.jsonl"), "--epochs", "two"])
    assert_clean_error(done, "epochs: expected an integer, got 'two'")
    done = cli(["cost", *_common(tmp_path, micro_model, toy_world / "pairs_train.jsonl"), "--loss_type=mean"])
    assert_clean_error(done, "loss_type: 'mean' is not one of")


def test_missing_required_options_are_listed(cli) -> None:
    assert_clean_error(
        cli(["sft"]), "missing required option(s)", "model_name_or_path", "train_data", "output_dir"
    )


def test_missing_config_file_and_bad_json(tmp_path: Path, cli) -> None:
    assert_clean_error(cli(["reward", "--config", str(tmp_path / "run.json")]), "config file not found")
    (tmp_path / "run.json").write_text("{oops")
    assert_clean_error(cli(["reward", "--config", str(tmp_path / "run.json")]), "is not valid JSON")


def test_missing_data_file_fails_cleanly_and_records_a_failed_event(
    tmp_path: Path, micro_model: Path, cli
) -> None:
    done = cli(["reward", *_common(tmp_path, micro_model, tmp_path / "nope.jsonl")])
    assert_clean_error(done, "data file not found", "nope.jsonl")
    events = read_events(tmp_path / "out" / "events.jsonl")
    assert events[-1]["status"] == "failed" and events[-1]["error"] == "DataError"


def test_missing_model_directory_fails_cleanly(tmp_path: Path, toy_world: Path, cli) -> None:
    done = cli(["sft", *_common(tmp_path, tmp_path / "no-model", toy_world / "sft.jsonl")])
    assert_clean_error(done, "no-model", "models are never downloaded")


def test_unknown_stage_gets_a_suggestion(cli) -> None:
    assert_clean_error(cli(["rewrd"]), "unknown stage 'rewrd'", "did you mean 'reward'")


def test_stage_help_lists_every_option(cli) -> None:
    done = cli(["cost", "--help"])
    assert done.returncode == 0
    for field in dataclasses.fields(CostModelConfig):
        assert f"--{field.name} " in done.stdout


@pytest.mark.parametrize("name", ["init-tiny", "sft", "reward", "cost"])
def test_every_config_field_has_help_text_and_the_common_keys(name: str) -> None:
    cls = STAGES[name].config_cls
    for field in dataclasses.fields(cls):
        assert field.metadata.get("help"), f"{name}.{field.name} has no help text"
    if name != "init-tiny":
        names = {f.name for f in dataclasses.fields(cls)}
        assert {"model_name_or_path", "train_data", "eval_data", "output_dir", "seed", "epochs"} <= names


def test_run_json_and_overrides_build_a_frozen_config(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps(
            {
                "model_name_or_path": "m",
                "train_data": "t",
                "output_dir": "o",
                "adam_betas": [0.9, 0.99],
                "zero_stage": 2,
            }
        )
    )
    config = load_config(RewardModelConfig, str(path), parse_overrides(["--seed=7", "--zero-stage", "none"]))
    assert (config.seed, config.adam_betas, config.zero_stage) == (7, (0.9, 0.99), None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]
    with pytest.raises(ConfigError, match="offload needs DeepSpeed"):
        load_config(SFTConfig, str(path), {"zero_stage": "none", "offload": "optimizer"})


def test_defaults_follow_the_reference_scripts() -> None:
    config = RewardModelConfig(model_name_or_path="m", train_data="t", output_dir="o")
    assert (config.regularization, config.adam_betas, config.max_grad_norm) == (0.001, (0.9, 0.95), 1.0)
    assert (config.loss_type, config.lr_scheduler_type, config.learning_rate) == (
        "sequence-wise",
        "cosine",
        2e-5,
    )


def test_event_writer_follows_the_documented_schema(tmp_path: Path) -> None:
    with EventWriter(tmp_path, "reward") as events:
        events.status("started", "go")
        events.metric(3, {"train/loss": 0.5, "train/bad": float("nan")})
        events.progress(3, 10, 0.3, eta_s=7.0)
        events.checkpoint(3, "checkpoints/step-00000003")
    with EventWriter(tmp_path, "reward") as events:  # a resumed run continues the numbering
        events.status("completed", "done")
    with (tmp_path / "events.jsonl").open("a") as fh:
        fh.write('{"v": 1, "seq": 99, "ty')  # a torn last line from a killed process
    events = read_events(tmp_path / "events.jsonl")
    assert [e["seq"] for e in events] == [0, 1, 2, 3, 4]
    assert [e["type"] for e in events] == ["status", "metric", "progress", "checkpoint", "status"]
    assert all({"v", "seq", "time", "stage", "type"} <= set(e) for e in events)
    assert events[1]["metrics"] == {"train/loss": 0.5, "train/bad": None}
    assert events[2]["fraction"] == pytest.approx(0.3)
