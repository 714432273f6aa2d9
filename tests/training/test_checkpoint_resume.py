"""Atomic, pickle-free checkpoints, and a killed-then-resumed run that reproduces the loss sequence."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.training.conftest import losses_from_events
from training.engine.checkpoint import COMPLETE, CheckpointManager
from training.engine.serialization import load_state, save_state
from training.events import read_events


def _write(payload: str):
    def write(directory: Path) -> None:
        (directory / "data.txt").write_text(payload)

    return write


def test_save_is_atomic_with_a_complete_marker_and_latest_pointer(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=2)
    first = manager.save(3, _write("a"))
    assert (first / COMPLETE).is_file() and (tmp_path / "latest").read_text().strip() == first.name
    assert manager.latest() == first
    second = manager.save(7, _write("b"))
    assert manager.latest() == second and not list(tmp_path.glob(".tmp-*"))


def test_incomplete_and_stale_checkpoints_are_ignored_and_cleaned(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=3)
    good = manager.save(2, _write("a"))
    (tmp_path / "step-00000009").mkdir()  # a crash after rename is impossible, but be robust
    (tmp_path / ".tmp-step-00000010-123").mkdir()  # a crash mid-save leaves only a temp dir
    (tmp_path / "latest").write_text("step-00000009\n")  # and a pointer to an incomplete one
    assert manager.latest() == good
    manager.clean_stale()
    assert not (tmp_path / ".tmp-step-00000010-123").exists()


def test_old_checkpoints_are_pruned_and_a_step_can_be_saved_again(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (1, 2, 3):
        manager.save(step, _write(str(step)))
    assert [p.name for p in manager.complete_checkpoints()] == ["step-00000002", "step-00000003"]
    again = manager.save(3, _write("again"))
    assert (again / "data.txt").read_text() == "again"


def test_state_serialization_round_trips_without_pickle(tmp_path: Path) -> None:
    state = {
        "a": (1, 2.5, "x"),
        3: [torch.arange(4), None],
        "nan": float("nan"),
        "nested": {"t": torch.ones(2, 2)},
    }
    save_state(tmp_path, "s", state)
    back = load_state(tmp_path, "s")
    assert back["a"] == (1, 2.5, "x") and torch.equal(back[3][0], torch.arange(4)) and back[3][1] is None
    assert math.isnan(back["nan"]) and torch.equal(back["nested"]["t"], torch.ones(2, 2))
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".safetensors"]


def test_adamw_state_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.9, 0.95))
    for _ in range(2):
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    save_state(tmp_path, "opt", opt.state_dict())
    clone = torch.nn.Linear(3, 2)
    clone.load_state_dict(model.state_dict())
    opt2 = torch.optim.AdamW(clone.parameters(), lr=0.5)
    opt2.load_state_dict(load_state(tmp_path, "opt"))
    x = torch.randn(4, 3)
    for m, o in ((model, opt), (clone, opt2)):
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    assert torch.equal(model.weight, clone.weight)


@pytest.mark.slow
def test_killed_and_resumed_run_reproduces_the_uninterrupted_losses(
    tmp_path: Path, micro_model: Path, toy_world: Path, cli
) -> None:
    args = [
        "--model_name_or_path",
        str(micro_model),
        "--train_data",
        str(toy_world / "pairs_train.jsonl"),
        "--epochs",
        "2",
        "--max_steps",
        "14",
        "--per_device_train_batch_size",
        "8",
        "--gradient_accumulation_steps",
        "2",
        "--learning_rate",
        "1e-3",
        "--max_length",
        "96",
        "--logging_steps",
        "1",
        "--save_steps",
        "4",
        "--lr_warmup_ratio",
        "0.2",
    ]
    whole = cli(["cost", *args, "--output_dir", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr
    killed = cli(
        ["cost", *args, "--output_dir", str(tmp_path / "resumed")], TRAINING_TEST_CRASH_AFTER_STEP="10"
    )
    assert killed.returncode == 75  # hard exit after step 10; the last checkpoint is step 8
    before_kill = losses_from_events(tmp_path / "resumed" / "events.jsonl")
    assert max(before_kill) == 10
    resumed = cli(["cost", *args, "--output_dir", str(tmp_path / "resumed")])
    assert resumed.returncode == 0, resumed.stderr

    events = read_events(tmp_path / "resumed" / "events.jsonl")
    assert [e["step"] for e in events if e.get("status") == "resumed"] == [8]
    reference, after = (
        losses_from_events(tmp_path / "whole" / "events.jsonl"),
        losses_from_events(tmp_path / "resumed" / "events.jsonl"),
    )
    assert sorted(reference) == list(range(1, 15)) and sorted(after) == sorted(reference)
    for step, loss in reference.items():
        assert after[step] == pytest.approx(loss, abs=1e-6), step
    for step in (9, 10):  # steps run twice (before the kill and after the resume) agree too
        assert before_kill[step] == pytest.approx(reference[step], abs=1e-6)
    ckpt = tmp_path / "resumed" / "checkpoints"
    assert not [p for p in ckpt.rglob("*") if p.suffix in (".bin", ".pt", ".pkl", ".pth")]
