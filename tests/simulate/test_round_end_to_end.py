"""A whole round, end to end, the way the demo runs it: over REST against a `saferlhf serve`
process, a real Celery worker running every stage (`python -m training` subprocesses), simulated
annotators (package `simulate`) labelling the policy's answers through the queue, and tiny models
with the smallest settings. The round must complete and leave its row in the report."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from saferlhf_client import Client
from simulate import CrowdSettings, enlist_bots, project_categories, run_bots
from tests.support.live_server import LiveServer, live_server
from tests.support.processes import PYTHON, child_env, start, stop
from tests.training.conftest import micro_model, toy_world  # noqa: F401 (fixtures)
from tests.worker.conftest import JOB_TIMINGS

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

# The smallest settings that still run every stage: 4 prompts x 2 answers, a few optimizer steps.
TINY = {"per_device_train_batch_size": 4, "max_length": 64, "epochs": 1, "logging_steps": 1, "num_threads": 1}
TINY_POLICY = {
    "max_prompt_length": 40,
    "max_steps": 2,
    "epochs": 10,
    "per_device_prompt_batch_size": 4,
    "per_device_train_batch_size": 4,
    "save_steps": 1,
    "num_threads": 1,
}


@pytest.fixture(scope="module")
def platform(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, str]]:
    """The API and one worker (training queue of its own, plus the scheduler) on one artifacts dir."""
    base = tmp_path_factory.mktemp("round-e2e")
    queue = f"rounds-{uuid.uuid4().hex[:8]}"
    env = {"ARTIFACTS_DIR": str(base / "artifacts"), "JOB_QUEUE": queue, "ENVIRONMENT": "test", **JOB_TIMINGS}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    worker = start(
        [PYTHON, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", f"{queue},default", "-c", "1",
         "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
         "--beat", "--schedule", str(base / "beat-schedule"), "-n", f"{queue}@%h"],
        env=child_env(DATABASE_URL=database_url, REDIS_URL=redis_url, **env),
        log=base / "worker.log",
    )  # fmt: skip
    try:
        with live_server(database_url=database_url, artifacts=base / "artifacts", log_dir=base) as server:
            yield server, str(base / "worker.log")
    finally:
        stop(worker)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def admin_token(database_url: str) -> str:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from backend.domain.enums import TokenScope, UserRole
    from backend.services.tokens import create_token
    from backend.services.users import create_user
    from tests.factories import DEFAULT_PASSWORD

    engine = create_engine(database_url)
    with Session(engine, expire_on_commit=False) as session:
        email = f"admin-{uuid.uuid4().hex[:8]}@example.test"
        admin = create_user(session=session, email=email, password=DEFAULT_PASSWORD, role=UserRole.admin)
        new = create_token(
            session=session, actor=admin, owner=admin, name="e2e", scopes=list(TokenScope),
            allowed=frozenset(TokenScope),
        )  # fmt: skip
    engine.dispose()
    return new.secret


def prompts_file(world: Path) -> bytes:
    """Six training prompts and four held-out ones of the toy world, risky ones included."""
    rows = [json.loads(line) for line in (world / "prompts.jsonl").read_text().splitlines()]
    rng = random.Random(0)
    train = rng.sample([r for r in rows if r["split"] == "train"], 6)
    held = rng.sample([r for r in rows if r["split"] == "eval"], 4)
    out = [{"prompt": r["prompt"], "source": "toyworld"} for r in train]
    out += [{"prompt": r["prompt"], "source": "toyworld-heldout"} for r in held]
    return "".join(json.dumps(r) + "\n" for r in out).encode()


def model_files(source: Path, target: Path) -> Path:
    target.mkdir()
    for path in source.iterdir():
        if path.is_file() and path.name not in ("events.jsonl", "summary.json"):
            shutil.copy2(path, target / path.name)
    return target


def test_a_tiny_round_completes_end_to_end_with_simulated_annotators_and_reports_its_row(
    platform: tuple[LiveServer, str],
    database_url: str,
    toy_world: Path,  # noqa: F811
    micro_model: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    server, worker_log = platform
    token = admin_token(database_url)
    with Client(server.url, token, timeout=120) as api:
        pid = api.create_project(f"toy world {uuid.uuid4().hex[:6]}", default_overlap=1).id
        api.import_file(pid, prompts_file(toy_world), "prompts", filename="toyworld.jsonl")
        base = api.register_model(model_files(micro_model, tmp_path / "base"), kind="policy", project_id=pid)
        settings: dict[str, Any] = api.round_presets(pid) | {
            "base_policy_id": base["id"],
            "prompt_sources": ["toyworld"],
            "num_prompts": 4,
            "responses_per_prompt": 2,
            "max_new_tokens": 8,
            "overlap_k": 1,
            "collection_target_pairs": None,
            "held_out_fraction": 0.5,  # so that the reward and cost models have held-out pairs
        }
        settings["reward_config"] = settings["reward_config"] | TINY
        settings["cost_config"] = settings["cost_config"] | TINY
        settings["policy_config"] = settings["policy_config"] | TINY_POLICY
        settings["evaluate_config"] = settings["evaluate_config"] | {
            "per_device_eval_batch_size": 8,
            "samples_per_prompt": 1,
        }
        created = api.create_round(pid, settings)
        collecting = api.wait_for_round(
            created["id"], states=frozenset({"collecting", "failed", "cancelled"}), timeout=300, poll_s=0.5
        )
        assert collecting["state"] == "collecting", (collecting, Path(worker_log).read_text()[-3000:])

        bots = enlist_bots(api, pid, CrowdSettings(bots=2, noise=0.0, position_bias=0.0).profiles())
        tally = asyncio.run(run_bots(server.url, bots, pid, project_categories(api, pid), seed=1))
        assert tally.total >= 1  # the pairs generation put in the queue (identical answers make none)
        api.close_collection(created["id"])
        final = api.wait_for_round(created["id"], timeout=480, poll_s=1.0)
        assert final["state"] == "completed", (final, Path(worker_log).read_text()[-3000:])
        report = api.round_report(pid)
    row = next(r for r in report if r["round"] == final["number"])
    for key in ("reward_accuracy", "cost_sign_accuracy", "lambda", "true_helpfulness", "true_unsafe_rate"):
        assert key in row
    assert row["state"] == "completed" and row["true_unsafe_rate"] is not None, row  # judged by the judges
    assert row["lambda"] is not None and row["true_helpfulness"] is not None, row
    assert row["reward_accuracy"] is not None and 0.0 <= row["reward_accuracy"] <= 1.0, row
    # Recall per harm category: only when the held-out pairs hold an answer labelled unsafe.
    recall, counts = row["cost_recall_by_category"], row["cost_unsafe_count_by_category"]
    assert (recall is None and counts is None) or (
        set(recall) == set(counts) and all(0.0 <= r <= 1.0 for r in recall.values())
    ), row
