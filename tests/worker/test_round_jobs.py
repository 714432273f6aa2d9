"""Rounds on real Celery workers with the micro model: generation into the queue, annotation
through the queue services, reward and cost models on the snapshot, PPO-Lag, the arena, the report;
kill -9 of the worker during the reward-model stage (the reaper and a second worker finish the
round), and cancel mid-round (its running job stops)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from backend.db.models import Comparison, DatasetSnapshot, ModelArtifact, Prompt, Round, TrainingJob, User
from backend.domain.enums import JobKind, JobState, RoundState, UserRole
from tests.worker.conftest import Platform, training_pids

CPU = {"num_threads": 1, "device": "cpu"}
SUPERVISED = {"epochs": 1, "per_device_train_batch_size": 8, "max_length": 64, "logging_steps": 1, **CPU}
SETTINGS: dict[str, Any] = {
    "prompt_sources": ["toyworld"],
    "num_prompts": 12,
    "responses_per_prompt": 2,
    "max_new_tokens": 8,
    "overlap_k": 1,
    "collection_target_pairs": None,
    "reward_config": {**SUPERVISED, "max_steps": 8, "save_steps": 4},
    "cost_config": {**SUPERVISED, "max_steps": 4, "save_steps": 4},
    "policy_config": {
        "max_steps": 2,
        "per_device_prompt_batch_size": 4,
        "per_device_train_batch_size": 4,
        "max_prompt_length": 40,
        "save_steps": 100,
        **CPU,
    },
    "evaluate_config": {"per_device_eval_batch_size": 8, "max_prompt_length": 40, "max_prompts": 8, **CPU},
}
TIMEOUT = 600
DONE = (JobState.succeeded, JobState.failed, JobState.cancelled)


@pytest.fixture(scope="module")
def project(platform: Platform, toy_world: Path) -> dict[str, Any]:
    """Toy-world prompts in the platform's project (train and held-out), an annotator member."""
    from backend.services.imports.rows import content_hash
    from backend.services.projects import add_member
    from tests.factories import make_user

    rows = [json.loads(line) for line in (toy_world / "prompts.jsonl").read_text().splitlines() if line]
    with platform.sessions() as session:
        for row in rows[:80]:
            source = "toyworld-heldout" if row["split"] == "eval" else "toyworld"
            session.add(
                Prompt(
                    project_id=platform.project_id,
                    text=row["prompt"],
                    content_hash=content_hash(row["prompt"]),
                    source=source,
                    harm_category=row.get("harm_category"),
                )
            )
        admin = session.scalar(select(User).where(User.role == UserRole.admin))
        annotator = make_user(session, role=UserRole.annotator)
        from backend.db.models import Project

        add_member(
            session=session,
            actor=admin,
            project=session.get(Project, platform.project_id),
            user_id=annotator.id,
        )
        session.commit()
        return {"admin_id": admin.id, "annotator_id": annotator.id}


def _launch(platform: Platform, project: dict[str, Any], **overrides: Any) -> int:
    from backend.services.rounds import lifecycle
    from backend.services.rounds.settings import validate_round_settings

    with platform.sessions() as session:
        data = {**SETTINGS, "base_policy_id": platform.base_model_id, **overrides}
        settings = validate_round_settings(session=session, project_id=platform.project_id, data=data)
        admin = session.get(User, project["admin_id"])
        round_ = lifecycle.create_round(
            session=session, caller=admin, project_id=platform.project_id, settings=settings
        )
        _publish(platform, session, lifecycle.launch_round(session=session, round_id=round_.id))
        return int(round_.id)


def _publish(platform: Platform, session: Any, job_ids: list[int]) -> None:
    from backend.domain import task_names
    from backend.queue import send

    for job_id in job_ids:
        send(task_names.RUN_TRAINING_JOB, job_id, queue=platform.queue)


def _round(platform: Platform, round_id: int) -> Round:
    with platform.sessions() as session:
        round_ = session.get(Round, round_id)
        assert round_ is not None
        return round_


def _wait_round(
    platform: Platform, round_id: int, states: set[RoundState], timeout: float = TIMEOUT
) -> Round:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        round_ = _round(platform, round_id)
        if round_.state in states:
            return round_
        time.sleep(0.3)
    round_ = _round(platform, round_id)
    raise TimeoutError(f"round {round_id} is still {round_.state} ({round_.error}); wanted {states}")


def _annotate_and_close(platform: Platform, project: dict[str, Any], round_id: int) -> None:
    from backend.services.rounds import lifecycle
    from tests.support.rounds import RoundWorld, decide_all

    with platform.sessions() as session:
        admin, annotator = session.get(User, project["admin_id"]), session.get(User, project["annotator_id"])
        world = RoundWorld(admin, annotator, platform.project_id, platform.base_model_id, platform.artifacts)
        assert decide_all(session, world, platform.project_id) > 0
        _publish(platform, session, lifecycle.close_collection(session=session, round_id=round_id))


def _stage_job(platform: Platform, round_id: int, kind: JobKind) -> TrainingJob:
    with platform.sessions() as session:
        job = session.scalar(
            select(TrainingJob)
            .where(TrainingJob.round_id == round_id, TrainingJob.kind == kind)
            .order_by(TrainingJob.id)
        )
        assert job is not None
        return job


def send_reaper(platform: Platform) -> None:
    from backend.domain import task_names
    from backend.queue import send

    send(task_names.REAP_EXPIRED_LEASES, queue=platform.queue)


def test_kill_9_of_the_worker_during_the_reward_stage_and_the_round_still_completes(
    platform: Platform, project: dict[str, Any], start_worker
) -> None:  # type: ignore[no-untyped-def]
    first = start_worker("first")
    round_id = _launch(
        platform,
        project,
        seed=11,
        reward_config={**SUPERVISED, "epochs": 1000, "max_steps": 40, "save_steps": 5},
    )
    round_ = _wait_round(platform, round_id, {RoundState.collecting, RoundState.failed})
    assert round_.state == RoundState.collecting, round_.error
    with platform.sessions() as session:
        pairs = session.scalar(select(func.count()).where(Comparison.round_id == round_id))
    assert pairs and pairs > 0
    _annotate_and_close(platform, project, round_id)
    assert _round(platform, round_id).state == RoundState.training
    reward = _stage_job(platform, round_id, JobKind.reward)
    job = platform.wait_for(
        reward.id,
        lambda j: (j.current_step or 0) >= 6 or j.state in DONE,
        timeout=TIMEOUT,
        what="made progress",
    )
    assert job.state == JobState.running
    os.killpg(first.pid, signal.SIGKILL)  # the worker's main and pool processes, no clean-up at all
    run_json = platform.artifacts / f"jobs/{reward.id}/run.json"
    deadline = time.monotonic() + 30
    while training_pids(run_json) and time.monotonic() < deadline:
        time.sleep(0.1)
    start_worker("second")
    deadline = time.monotonic() + 120
    while platform.job(reward.id).attempt < 2 and time.monotonic() < deadline:
        send_reaper(platform)  # the beat's reaper: the dead worker's lease expires, the job requeues
        time.sleep(1)
    round_ = _wait_round(platform, round_id, {RoundState.completed, RoundState.failed, RoundState.cancelled})
    assert round_.state == RoundState.completed, round_.error
    assert platform.job(reward.id).attempt == 2 and platform.job(reward.id).state == JobState.succeeded
    with platform.sessions() as session:
        policy = session.get(ModelArtifact, round_.policy_id)
        assert policy is not None and policy.round_id == round_id
        assert policy.parent_id == platform.base_model_id  # lineage: trained from the round's base
        trained_on = session.get(
            DatasetSnapshot, session.get(ModelArtifact, round_.reward_model_id).snapshot_id
        )  # type: ignore[union-attr]
        assert (
            trained_on is not None and trained_on.recipe["split_of"] == round_.snapshot_id
        )  # the train part
    report = round_.report
    assert report["state"] == "completed" and report["reward_accuracy"] is not None
    assert report["lambda"] is not None and report["win_rate"] is not None
    assert report["true_helpfulness"] is not None  # a toy-world project: the judges' view too


def test_cancel_mid_round_stops_its_running_job(
    platform: Platform, project: dict[str, Any], start_worker
) -> None:  # type: ignore[no-untyped-def]
    from backend.services.rounds import lifecycle

    start_worker()
    round_id = _launch(
        platform,
        project,
        seed=12,
        reward_config={**SUPERVISED, "epochs": 1000, "max_steps": 100_000, "save_steps": 1000},
    )
    assert (
        _wait_round(platform, round_id, {RoundState.collecting, RoundState.failed}).state
        == RoundState.collecting
    )
    _annotate_and_close(platform, project, round_id)
    reward = _stage_job(platform, round_id, JobKind.reward)
    job = platform.wait_for(
        reward.id,
        lambda j: (j.current_step or 0) >= 1 or j.state in DONE,
        timeout=TIMEOUT,
        what="made progress",
    )
    assert job.state == JobState.running
    run_json = platform.artifacts / f"jobs/{reward.id}/run.json"
    assert training_pids(run_json)
    with platform.sessions() as session:
        lifecycle.cancel_round(session=session, round_id=round_id)
    job = platform.wait_for(reward.id, lambda j: j.state != JobState.running, timeout=120, what="stopped")
    assert job.state == JobState.cancelled
    assert training_pids(run_json) == []
    assert _stage_job(platform, round_id, JobKind.cost).state == JobState.cancelled
    assert _round(platform, round_id).state == RoundState.cancelled


def test_the_beat_task_closes_collection_once_the_target_is_decided(
    platform: Platform, project: dict[str, Any], start_worker
) -> None:  # type: ignore[no-untyped-def]
    from backend.domain import task_names
    from backend.queue import send
    from backend.services.rounds import lifecycle
    from tests.support.rounds import RoundWorld, decide_all

    start_worker()
    round_id = _launch(platform, project, seed=13, collection_target_pairs=3)
    assert (
        _wait_round(platform, round_id, {RoundState.collecting, RoundState.failed}).state
        == RoundState.collecting
    )
    with platform.sessions() as session:
        admin, annotator = session.get(User, project["admin_id"]), session.get(User, project["annotator_id"])
        world = RoundWorld(admin, annotator, platform.project_id, platform.base_model_id, platform.artifacts)
        decide_all(session, world, platform.project_id)
    assert _round(platform, round_id).state == RoundState.collecting  # nobody advanced it yet
    send(task_names.ADVANCE_ROUNDS, queue=platform.queue)  # what celery beat sends every few seconds
    round_ = _wait_round(
        platform, round_id, {RoundState.training, RoundState.policy, RoundState.failed}, timeout=120
    )
    assert round_.state != RoundState.failed, round_.error
    assert round_.collection_closed_at is not None and round_.snapshot_id is not None
    with platform.sessions() as session:
        lifecycle.cancel_round(session=session, round_id=round_id)
