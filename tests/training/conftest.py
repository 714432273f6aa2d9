"""Fixtures for the training tests: a toy world, tiny offline models and a CLI runner.

Everything is local: HF hubs are disabled and models are built by ``init-tiny``. DeepSpeed's JIT
ops are cached under ``<repo>/.dev/torch_extensions`` unless TORCH_EXTENSIONS_DIR is set.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".dev" / "torch_extensions"))

from training.config import InitTinyConfig, SFTConfig  # noqa: E402
from training.toyworld import WorldConfig, generate_world  # noqa: E402


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for key in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "TRAINING_TEST_CRASH_AFTER_STEP",
    ):
        env.pop(key, None)
    env.update(extra)
    return env


def run_cli(
    args: list[str], *, module: str = "training", timeout: float = 600, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` in a fresh process (the way the worker launches stages)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def losses_from_events(events_path: Path) -> dict[int, float]:
    """step -> train/loss from an events.jsonl (a re-run step keeps its last value)."""
    from training.events import read_events

    out: dict[int, float] = {}
    for event in read_events(events_path):
        if event["type"] == "metric" and "train/loss" in event["metrics"]:
            out[event["step"]] = event["metrics"]["train/loss"]
    return out


@pytest.fixture(scope="session")
def toy_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default toy world at 10% annotator noise (4000 noisy train pairs, 1000 true test pairs)."""
    out = tmp_path_factory.mktemp("toyworld")
    generate_world(out, WorldConfig(noise=0.1, seed=0))
    return out


@pytest.fixture(scope="session")
def tiny_model(toy_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ~0.66M-parameter Llama (hidden 128, 2 layers) with a BPE tokenizer of the toy corpus."""
    from training.models.tiny import run_init_tiny

    out = tmp_path_factory.mktemp("tiny")
    run_init_tiny(InitTinyConfig(out=str(out), corpus=str(toy_world / "sft.jsonl")))
    return out


@pytest.fixture(scope="session")
def micro_model(toy_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An even smaller model (hidden 32, 1 layer) for mechanics tests where learning is not the point."""
    from training.models.tiny import run_init_tiny

    out = tmp_path_factory.mktemp("micro")
    run_init_tiny(
        InitTinyConfig(
            out=str(out), corpus=str(toy_world / "sft.jsonl"), hidden=32, layers=1, heads=2, vocab_size=600
        )
    )
    return out


@pytest.fixture(scope="session")
def sft_model(toy_world: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model after a short SFT on the toy corpus (the reward/cost models start from it)."""
    from training.algorithms.sft import run_sft

    out = tmp_path_factory.mktemp("sft")
    run_sft(
        SFTConfig(
            model_name_or_path=str(tiny_model),
            train_data=str(toy_world / "sft.jsonl"),
            output_dir=str(out),
            epochs=4,
            learning_rate=3e-3,
            per_device_train_batch_size=32,
            gradient_accumulation_steps=1,
            max_length=128,
            weight_decay=0.0,
            lr_warmup_ratio=0.05,
            logging_steps=50,
            save_steps=10_000,
        )
    )
    return out


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli
