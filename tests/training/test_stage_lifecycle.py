"""Every stage ends its events.jsonl with how it ended; the platform's torch-free view of the stages;
clear one-line errors for model directories that are not models or hold corrupt weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.conftest import REPO, cli_env
from tests.training.rl_fixtures import micro_rl
from training.config import validate_stage_config
from training.engine.lifecycle import StageRun
from training.errors import ConfigError
from training.events import read_events
from training.stages import INPUT_ROLES, STAGES

FIXTURES = (micro_rl,)


def _statuses(out: Path) -> list[dict]:
    return [e for e in read_events(out / "events.jsonl") if e["type"] == "status"]


def _assert_failed_with_the_cli_line(
    done: subprocess.CompletedProcess[str], out: Path, *fragments: str
) -> dict:
    """Exit 2, one ``error:`` line without a traceback, and a last event ``failed`` with that line."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ")
    last = read_events(out / "events.jsonl")[-1]
    assert (last["type"], last["status"], last["message"]) == (
        "status",
        "failed",
        line.removeprefix("error: "),
    )
    for fragment in fragments:
        assert fragment in last["message"]
    return last


def _score_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"--model_name_or_path={model}",
        f"--train_data={data}",
        f"--output_dir={out}",
        "--per_device_train_batch_size=8",
        "--max_length=96",
        "--num_threads=1",
        *extra,
    ]


# ----------------------------------------------------------------- lifecycle


def test_a_reward_run_on_bad_data_ends_with_a_failed_event_carrying_the_cli_message(
    tmp_path: Path, micro_model: Path, cli
) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "hi"}\n[1, 2]\n')
    out = tmp_path / "out"
    done = cli(["reward", *_score_args(micro_model, data, out)])
    last = _assert_failed_with_the_cli_line(done, out, "row 1 is not a JSON object")
    assert last["error"] == "DataError" and last["step"] == 0
    assert _statuses(out)[0]["status"] == "started"


def test_a_failing_generate_ends_with_a_failed_event(tmp_path: Path, micro_model: Path, cli) -> None:
    out = tmp_path / "gen"
    done = cli(
        [
            "generate",
            f"--model_name_or_path={micro_model}",
            f"--prompt_data={tmp_path / 'missing.jsonl'}",
            f"--output_dir={out}",
            "--device=cpu",
        ]
    )
    last = _assert_failed_with_the_cli_line(done, out, "missing.jsonl")
    assert last["error"] == "DataError"
    assert [e["status"] for e in _statuses(out)] == ["started", "failed"]


def test_a_failing_evaluate_ends_with_a_failed_event(tmp_path: Path, micro_rl: dict, cli) -> None:
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    out = tmp_path / "arena"
    done = cli(
        [
            "evaluate",
            f"--red_model_name_or_path={micro_rl['actor']}",
            f"--blue_model_name_or_path={micro_rl['actor']}",
            f"--reward_model_name_or_path={micro_rl['rm']}",
            f"--cost_model_name_or_path={not_a_model}",
            f"--prompt_data={micro_rl['eval']}",
            f"--output_dir={out}",
            "--device=cpu",
        ]
    )
    last = _assert_failed_with_the_cli_line(done, out, f"{not_a_model} is not a Hugging Face model directory")
    assert last["error"] == "ConfigError"


def test_generate_reports_progress_in_prompts_and_ends_completed(tmp_path: Path, micro_rl: dict, cli) -> None:
    out = tmp_path / "gen"
    done = cli(
        [
            "generate",
            f"--model_name_or_path={micro_rl['actor']}",
            f"--prompt_data={micro_rl['eval']}",
            f"--output_dir={out}",
            "--max_prompts=10",
            "--per_device_eval_batch_size=4",
            "--max_new_tokens=4",
            "--device=cpu",
            "--num_threads=1",
        ]
    )
    assert done.returncode == 0, done.stderr
    events = read_events(out / "events.jsonl")
    assert (events[0]["status"], events[-1]["status"]) == ("started", "completed")
    progress = [(e["step"], e["total_steps"]) for e in events if e["type"] == "progress"]
    assert progress == [(4, 10), (8, 10), (10, 10)]
    assert (out / "train.log").is_file()


def test_init_tiny_writes_its_status_events_into_the_model_directory(
    tmp_path: Path, toy_world: Path, cli
) -> None:
    out = tmp_path / "tiny"
    args = ["init-tiny", f"--out={out}", f"--corpus={toy_world / 'sft.jsonl'}", "--hidden=16", "--heads=2"]
    done = cli([*args, "--layers=1", "--vocab_size=300"])
    assert done.returncode == 0, done.stderr
    assert [e["status"] for e in _statuses(out)] == ["started", "completed"]


def test_a_good_run_ends_completed_and_a_resumed_run_writes_resumed_with_its_step(
    tmp_path: Path, micro_model: Path, micro_rl: dict, cli
) -> None:
    out = tmp_path / "rm"
    first = cli(
        ["reward", *_score_args(micro_model, micro_rl["pairs"], out, "--max_steps=2", "--save_steps=1")]
    )
    assert first.returncode == 0, first.stderr
    assert [e["status"] for e in _statuses(out)] == ["started", "completed"]
    again = cli(
        ["reward", *_score_args(micro_model, micro_rl["pairs"], out, "--max_steps=3", "--save_steps=1")]
    )
    assert again.returncode == 0, again.stderr
    second = _statuses(out)[2:]
    assert [(e["status"], e.get("step")) for e in second] == [
        ("started", None),
        ("resumed", 2),
        ("completed", 3),
    ]


@pytest.mark.parametrize(
    "exc", [RuntimeError("CUDA error: device-side assert\nmore detail"), KeyboardInterrupt()]
)
def test_an_unexpected_error_ends_the_run_with_failed_and_is_raised_again(
    tmp_path: Path, exc: BaseException
) -> None:
    step = 0
    with pytest.raises(type(exc)), StageRun.open(tmp_path, "sft") as run:
        run.events.progress(1, 4, 0.25)
        step = 1
        raise exc
    last = read_events(tmp_path / "events.jsonl")[-1]
    expected = "CUDA error: device-side assert" if isinstance(exc, RuntimeError) else "KeyboardInterrupt"
    assert (last["status"], last["error"], last["message"]) == ("failed", type(exc).__name__, expected)
    assert step == 1


# ------------------------------------------------------ the platform's view


def test_stage_definitions_and_validation_import_no_torch() -> None:
    code = (
        "import json, sys\n"
        "from training.config import validate_stage_config\n"
        "from training.stages import STAGES\n"
        "cfg = validate_stage_config('reward', "
        "{'model_name_or_path': 'm', 'train_data': 't', 'output_dir': 'o'})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformers', 'deepspeed', 'numpy', 'safetensors'))\n"
        "print(json.dumps({'heavy': heavy, 'lr': cfg['learning_rate'], 'stages': len(STAGES)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    assert result == {"heavy": [], "lr": 2e-5, "stages": len(STAGES)}


def test_validation_refuses_with_the_exact_message_of_the_cli(cli) -> None:
    done = cli(["reward", "--model_name_or_path=m", "--train_data=t", "--output_dir=o", "--learnig_rate=1"])
    assert done.returncode == 2
    with pytest.raises(ConfigError) as caught:
        validate_stage_config(
            "reward", {"model_name_or_path": "m", "train_data": "t", "output_dir": "o", "learnig_rate": 1}
        )
    assert done.stderr.strip().splitlines()[-1] == f"error: {caught.value}"
    assert "unknown option 'learnig_rate'" in str(caught.value) and "did you mean 'learning_rate'" in str(
        caught.value
    )
    for stage, config, message in (
        ("rewrd", {}, "unknown stage 'rewrd'; did you mean 'reward'?"),
        (
            "sft",
            {"output_dir": "o"},
            "missing required option(s) for stage 'sft': model_name_or_path, train_data",
        ),
        (
            "cost",
            {"model_name_or_path": "m", "train_data": "t", "output_dir": "o", "epochs": "two"},
            "epochs: expected",
        ),
        (
            "dpo",
            {"model_name_or_path": "m", "train_data": "t", "output_dir": "o", "scale_coeff": 0},
            "scale_coeff must",
        ),
    ):
        with pytest.raises(
            ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")
        ):
            validate_stage_config(stage, config)


def test_validation_returns_the_config_the_stage_would_see() -> None:
    config = validate_stage_config(
        "ppo-lag",
        {
            "model_name_or_path": "sft",
            "reward_model_name_or_path": "rm",
            "cost_model_name_or_path": "cm",
            "train_data": "prompts.jsonl",
            "output_dir": "out",
            "preset": "beaver-v2",
            "lambda_lr": "0.5",
            "adam_betas": "0.9,0.99",
        },
    )
    assert (config["threshold"], config["lambda_init"], config["lambda_lr"]) == (-3.0, 0.5, 0.5)
    assert config["adam_betas"] == [0.9, 0.99] and config["resume"] == "auto"
    json.dumps(config)  # ready to store as the job's run.json


def test_every_stage_says_what_it_produces_and_which_keys_name_its_inputs() -> None:
    produces = {name: stage.produces for name, stage in STAGES.items()}
    assert produces == {
        "init-tiny": None,
        "sft": "policy",
        "reward": "reward",
        "cost": "cost",
        "ppo": "policy",
        "ppo-lag": "policy",
        "reward-shaping": "policy",
        "dpo": "policy",
        "generate": None,
        "evaluate": None,
    }
    lag = STAGES["ppo-lag"]
    assert lag.input_fields["base_model"] == "model_name_or_path"
    assert lag.input_fields["reward_model"] == "reward_model_name_or_path"
    assert lag.input_fields["cost_model"] == "cost_model_name_or_path"
    assert lag.input_fields["dataset"] == "train_data"
    assert set(lag.required_inputs()) == {"base_model", "reward_model", "cost_model", "dataset"}
    assert STAGES["generate"].input_fields["dataset"] == "prompt_data"
    assert STAGES["generate"].required_inputs() == ["base_model", "dataset"]
    assert STAGES["init-tiny"].output_field == "out"
    for stage in STAGES.values():
        assert set(stage.input_fields) <= set(INPUT_ROLES)
        keys = {f for f in stage.config_cls.__dataclass_fields__}
        assert set(stage.input_fields.values()) <= keys and stage.output_field in keys
        path_keys = {k for k in keys if k.endswith(("_name_or_path", "_data")) or k == "corpus"}
        assert path_keys == set(stage.input_fields.values()), stage.name  # no input path is left out


# ------------------------------------------------------------ clear errors


def test_a_directory_that_is_not_a_model_is_named_in_one_line(tmp_path: Path, micro_rl: dict, cli) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.txt").write_text("not a model\n")
    out = tmp_path / "out"
    done = cli(["reward", *_score_args(notes, micro_rl["pairs"], out)])
    _assert_failed_with_the_cli_line(done, out)
    assert (
        done.stderr.strip().splitlines()[-1]
        == f"error: {notes} is not a Hugging Face model directory (no config.json)"
    )


def test_corrupt_safetensors_are_a_user_error_naming_the_file(
    tmp_path: Path, micro_model: Path, micro_rl: dict, cli
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in micro_model.iterdir():
        if item.is_file():
            (broken / item.name).write_bytes(item.read_bytes())
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a truncated download
    out = tmp_path / "out"
    done = cli(["reward", *_score_args(broken, micro_rl["pairs"], out)])
    last = _assert_failed_with_the_cli_line(done, out, f"{weights} is not a valid safetensors file: ")
    assert last["error"] == "ConfigError"
