"""Training jobs on real Celery workers: submit over REST, run `python -m training` as a subprocess,
stream metrics, register the model; crashes, lost workers, duplicate and lost messages, cancel,
and a stage's own refusal (exit 2)."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import tarfile
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.db.models import Metric, ModelArtifact
from backend.domain.enums import JobState
from tests.training.conftest import losses_from_events
from tests.worker.conftest import FAST_CONFIG, Platform, training_pids
from training.events import read_events

DONE = (JobState.succeeded, JobState.failed, JobState.cancelled)


def finished(job) -> bool:  # type: ignore[no-untyped-def]
    return job.state in DONE


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def api(platform: Platform):  # type: ignore[no-untyped-def]
    from backend.main import create_app

    app = create_app(platform.settings)
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def events_of(platform: Platform, job_id: int) -> list[dict]:  # type: ignore[type-arg]
    return read_events(platform.artifacts / f"jobs/{job_id}/output/events.jsonl")


def test_a_reward_job_over_rest_runs_on_a_worker_streams_metrics_and_registers_a_model(
    platform: Platform, start_worker, api: TestClient, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    start_worker()
    response = api.post(
        "/api/v1/jobs",
        json={
            "kind": "reward",
            "config": FAST_CONFIG,
            "inputs": platform.inputs(),
            "project_id": platform.project_id,
        },
        headers=platform.admin_headers,
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    job = platform.wait_for(job_id, finished, timeout=240, what="finished")
    assert job.state == JobState.succeeded, job.error
    assert (job.attempt, job.current_step, job.total_steps, job.progress) == (1, 30, 30, 1.0)
    with platform.sessions() as session:
        losses = session.scalars(
            select(Metric.step)
            .where(Metric.job_id == job_id, Metric.name == "train/loss")
            .order_by(Metric.step)
        ).all()
        model = session.scalar(select(ModelArtifact).where(ModelArtifact.training_job_id == job_id))
    assert list(losses) == list(range(1, 31))
    assert job.ingest_seq == events_of(platform, job_id)[-1]["seq"] + 1
    assert events_of(platform, job_id)[-1]["status"] == "completed"
    # The registered model: lineage, and the very weights the stage wrote.
    assert model is not None and model.kind.value == "reward"
    assert (model.parent_id, model.snapshot_id, model.project_id) == (
        platform.base_model_id,
        platform.snapshot_id,
        platform.project_id,
    )
    output = platform.artifacts / f"jobs/{job_id}/output"
    hashes = {f["path"]: f["sha256"] for f in model.files}
    assert hashes["model.safetensors"] == sha256_of(output / "model.safetensors")
    assert not any(path.startswith("checkpoints") for path in hashes)  # no optimizer state
    # The API shows the job and its log; a client downloads the model and it scores the same.
    shown = api.get(f"/api/v1/jobs/{job_id}", headers=platform.admin_headers).json()
    assert shown["state"] == "succeeded" and shown["url"].endswith(f"/admin/jobs/{job_id}")
    archive = api.get(f"/api/v1/models/{model.id}/archive", headers=platform.admin_headers)
    assert archive.status_code == 200
    target = tmp_path / "downloaded"
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        tar.extractall(target, filter="data")
    root = next(p.parent for p in target.rglob("config.json"))
    assert {f: sha256_of(root / f) for f in hashes} == hashes
    assert score_of(root) == score_of(output)


def score_of(model_dir: Path) -> float:
    import torch

    from training.models.loading import load_score_model

    model = load_score_model(model_dir).eval()
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    return float(out.end_scores.flatten()[0])


def test_kill_9_of_the_training_process_retries_and_resumes_after_the_checkpoint(
    platform: Platform, start_worker
) -> None:  # type: ignore[no-untyped-def]
    start_worker()
    config = {**FAST_CONFIG, "max_steps": 400, "save_steps": 20, "seed": 1}
    job_id = platform.submit(config)
    run_json = platform.artifacts / f"jobs/{job_id}/run.json"
    checkpoint = wait_for_checkpoint(platform, job_id)
    pids = training_pids(run_json)
    assert pids, "the stage's process was not found"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    job = platform.wait_for(job_id, finished, timeout=300, what="finished")
    assert job.state == JobState.succeeded, job.error
    assert job.attempt == 2
    events = events_of(platform, job_id)
    resumed = [e for e in events if e["type"] == "status" and e["status"] == "resumed"]
    assert len(resumed) == 1 and resumed[0]["step"] >= checkpoint
    after = events[events.index(resumed[0]) + 1 :]
    first_step = next(e["step"] for e in after if e["type"] == "metric" and "train/loss" in e["metrics"])
    assert first_step == resumed[0]["step"] + 1
    with platform.sessions() as session:
        count = session.scalar(
            select(func.count()).where(Metric.job_id == job_id, Metric.name == "train/loss")
        )
    assert count == len(losses_from_events(platform.artifacts / f"jobs/{job_id}/output/events.jsonl")) == 400


def wait_for_checkpoint(platform: Platform, job_id: int, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [e["step"] for e in events_of(platform, job_id) if e["type"] == "checkpoint"]
        if steps:
            return int(steps[0])
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} wrote no checkpoint")


def send_reaper(platform: Platform) -> None:
    """The beat task, delivered to the test's own queue (a real worker runs it)."""
    from backend.domain import task_names
    from backend.queue import send

    send(task_names.REAP_EXPIRED_LEASES, queue=platform.queue)


def test_kill_9_of_the_worker_is_reaped_resumed_by_another_worker_and_late_writes_are_refused(
    platform: Platform, start_worker
) -> None:  # type: ignore[no-untyped-def]
    from backend.services.jobs import Lease, renew_lease
    from worker import fence
    from worker.ingest import Digest, store

    first = start_worker("first")
    job_id = platform.submit({**FAST_CONFIG, "max_steps": 400, "save_steps": 20, "seed": 2})
    checkpoint = wait_for_checkpoint(platform, job_id)
    row = platform.job(job_id)
    old = Lease(job_id=job_id, token=row.lease_token, attempt=row.attempt, expires_at=row.lease_expires_at)
    os.killpg(first.pid, signal.SIGKILL)  # the worker's main and pool processes, no clean-up at all
    run_json = platform.artifacts / f"jobs/{job_id}/run.json"
    deadline = time.monotonic() + 30
    while training_pids(run_json) and time.monotonic() < deadline:
        time.sleep(0.1)  # the stage dies with the pool process that started it (PDEATHSIG)
    assert training_pids(run_json) == []
    start_worker("second")
    deadline = time.monotonic() + 120
    while platform.job(job_id).lease_token == old.token and time.monotonic() < deadline:
        send_reaper(platform)
        time.sleep(1)
    job = platform.wait_for(job_id, finished, timeout=300, what="finished")
    assert job.state == JobState.succeeded, job.error
    assert job.attempt == 2 and job.worker_id != row.worker_id
    resumed = [e for e in events_of(platform, job_id) if e["type"] == "status" and e["status"] == "resumed"]
    assert len(resumed) == 1 and resumed[0]["step"] >= checkpoint
    # The first owner's late writes are refused by the fence.
    with platform.sessions() as session:
        assert renew_lease(session=session, lease=old, lease_seconds=60) is False
        assert store(session, lease=old, batch=Digest(next_seq=0), output_key=None, tail="late") is False
        assert fence.finish(session, old, JobState.failed, "late") is False
        output = platform.artifacts / f"jobs/{job_id}/output"
        assert (
            fence.succeed(session, old, settings=platform.settings, output_dir=output, produces="reward")
            is False
        )
        models = session.scalar(select(func.count()).where(ModelArtifact.training_job_id == job_id))
    assert models == 1
    assert platform.job(job_id).state == JobState.succeeded


def test_the_same_message_delivered_twice_runs_the_job_once(platform: Platform, start_worker) -> None:  # type: ignore[no-untyped-def]
    from backend.domain import task_names
    from backend.queue import client

    start_worker()
    job_id = platform.submit(FAST_CONFIG | {"seed": 7}, publish=False)
    results = [
        client().send_task(task_names.RUN_TRAINING_JOB, args=[job_id], queue=platform.queue) for _ in range(2)
    ]
    outcomes = sorted(result.get(timeout=300)["outcome"] for result in results)
    assert outcomes == ["not-queued", "succeeded"]
    job = platform.job(job_id)
    assert job.state == JobState.succeeded and job.attempt == 1
    started = [e for e in events_of(platform, job_id) if e["type"] == "status" and e["status"] == "started"]
    assert len(started) == 1


def test_a_job_whose_message_was_lost_is_published_again_by_the_reaper(
    platform: Platform, start_worker
) -> None:  # type: ignore[no-untyped-def]
    start_worker()
    job_id = platform.submit(FAST_CONFIG | {"seed": 8}, publish=False)  # committed, never published
    deadline = time.monotonic() + 60
    while platform.job(job_id).state == JobState.queued and time.monotonic() < deadline:
        send_reaper(platform)
        time.sleep(1)
    job = platform.wait_for(job_id, finished, timeout=300, what="finished")
    assert job.state == JobState.succeeded and job.attempt == 1
    assert job.published_at is not None


def test_cancel_stops_the_stages_process_group_and_records_the_cancellation(
    platform: Platform, start_worker, api: TestClient
) -> None:  # type: ignore[no-untyped-def]
    start_worker()
    job_id = platform.submit({**FAST_CONFIG, "max_steps": 100_000, "save_steps": 1000, "seed": 3})
    platform.wait_for(job_id, lambda j: (j.current_step or 0) >= 1, timeout=240, what="made progress")
    run_json = platform.artifacts / f"jobs/{job_id}/run.json"
    assert training_pids(run_json)
    response = api.post(f"/api/v1/jobs/{job_id}/cancel", headers=platform.admin_headers)
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    job = platform.wait_for(job_id, finished, timeout=60, what="stopped")
    assert job.state == JobState.cancelled and job.error is None
    assert training_pids(run_json) == []  # recorded only once the whole group is gone
    with platform.sessions() as session:
        assert session.scalar(select(func.count()).where(ModelArtifact.training_job_id == job_id)) == 0


def test_a_stage_that_refuses_its_data_fails_at_once_with_its_message(
    platform: Platform, start_worker, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from tests.worker.conftest import register_snapshot

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "response_0": "a"}\n')
    with platform.sessions() as session:
        snapshot_id = register_snapshot(session, platform.project_id, platform.artifacts, bad)
    start_worker()
    inputs = {"snapshot_id": snapshot_id, "base_model_id": platform.base_model_id}
    job_id = platform.submit(FAST_CONFIG, inputs=inputs)
    job = platform.wait_for(job_id, finished, timeout=240, what="finished")
    assert job.state == JobState.failed and job.attempt == 1  # no retry: a retry cannot help
    stderr = (platform.artifacts / f"jobs/{job_id}/stderr.log").read_text()
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: ") and job.error == last.removeprefix("error: ")
    assert "\n" not in job.error
    final = events_of(platform, job_id)[-1]
    assert final["type"] == "status" and final["status"] == "failed"


def test_saferlhf_train_submits_and_follows_the_job_to_its_end(
    platform: Platform, start_worker, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess

    from tests.support.processes import PYTHON, child_env

    def saferlhf(*args: str) -> subprocess.CompletedProcess[str]:
        command = [PYTHON, "-m", "backend.cli", *args]
        env = child_env(**platform.env)
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)

    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({**FAST_CONFIG, "learnig_rate": 1e-3}))
    common = ["--snapshot", str(platform.snapshot_id), "--base-model", str(platform.base_model_id)]
    refused = saferlhf("train", "reward", "--config", str(run_json), *common)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: unknown option 'learnig_rate' for stage 'reward'; did you mean 'learning_rate'?"
    )
    start_worker()
    run_json.write_text(json.dumps({**FAST_CONFIG, "seed": 11}))
    args = ["train", "reward", "--config", str(run_json), *common, "--project", str(platform.project_id)]
    done = saferlhf(*args, "--wait", "--poll", "0.5")
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.split("submitted job ")[1].split(":")[0])
    assert done.stdout.strip().endswith(f"/admin/jobs/{job_id}")
    assert "100% succeeded" in done.stderr
    assert platform.job(job_id).state == JobState.succeeded
    again = saferlhf(*args)  # the identical job already succeeded: no new run
    assert again.returncode == 0 and f"an identical job already succeeded: job {job_id}" in again.stdout
