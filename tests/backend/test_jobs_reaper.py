"""The reaper's decisions and the fenced ingestion, on the real Postgres (no worker process)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.models import Metric, TrainingJob
from backend.domain.enums import JobKind, JobState
from backend.services.jobs import claim_job, create_job, renew_lease
from backend.services.jobs_reaper import reap_expired_leases, stale_queued_jobs
from worker import fence
from worker.ingest import EventTail, digest, store


def running_job(db_session, *, attempt_of: int = 3, expired: bool = True) -> tuple[TrainingJob, object]:  # type: ignore[no-untyped-def]
    job = create_job(session=db_session, kind=JobKind.reward, config={}, max_attempts=attempt_of)
    db_session.commit()
    lease = claim_job(session=db_session, job_id=job.id, worker_id="w1", lease_seconds=60)
    if expired:
        job.lease_expires_at = utcnow() - dt.timedelta(seconds=1)
        db_session.commit()
    return job, lease


def test_an_expired_lease_is_queued_again_and_its_old_owner_is_fenced_out(db_session) -> None:  # type: ignore[no-untyped-def]
    job, lease = running_job(db_session)
    result = reap_expired_leases(session=db_session, lease_seconds=60)
    assert job.id in result.requeued and result.queues[job.id] == "gpu"
    db_session.refresh(job)
    assert job.state == JobState.queued and job.lease_token is None and "lost its lease" in (job.error or "")
    assert renew_lease(session=db_session, lease=lease, lease_seconds=60) is False  # type: ignore[arg-type]
    assert fence.finish(db_session, lease, JobState.succeeded) is False  # type: ignore[arg-type]


def test_an_expired_lease_on_the_last_attempt_fails_the_job(db_session) -> None:  # type: ignore[no-untyped-def]
    job, _ = running_job(db_session, attempt_of=1)
    result = reap_expired_leases(session=db_session, lease_seconds=60)
    assert job.id in result.failed
    db_session.refresh(job)
    assert job.state == JobState.failed and "the last of 1" in (job.error or "")


def test_a_pending_cancel_of_a_dead_worker_is_recorded_as_cancelled(db_session) -> None:  # type: ignore[no-untyped-def]
    job, _ = running_job(db_session)
    job.cancel_requested = True
    db_session.commit()
    assert job.id in reap_expired_leases(session=db_session, lease_seconds=60).cancelled
    db_session.refresh(job)
    assert job.state == JobState.cancelled


def test_a_null_lease_counts_from_started_at(db_session) -> None:  # type: ignore[no-untyped-def]
    job, _ = running_job(db_session, expired=False)
    job.lease_expires_at, job.heartbeat_at = None, None
    job.started_at = utcnow() - dt.timedelta(seconds=30)
    db_session.commit()
    assert job.id not in reap_expired_leases(session=db_session, lease_seconds=60).requeued
    assert job.id in reap_expired_leases(session=db_session, lease_seconds=10).requeued


def test_a_live_lease_is_left_alone(db_session) -> None:  # type: ignore[no-untyped-def]
    job, _ = running_job(db_session, expired=False)
    result = reap_expired_leases(session=db_session, lease_seconds=60)
    assert job.id not in result.requeued + result.failed + result.cancelled


def test_a_queued_job_whose_message_is_old_is_republished_once_per_period(db_session) -> None:  # type: ignore[no-untyped-def]
    job = create_job(session=db_session, kind=JobKind.reward, config={})
    job.published_at = utcnow() - dt.timedelta(seconds=100)
    fresh = create_job(session=db_session, kind=JobKind.reward, config={})
    fresh.published_at = utcnow()
    db_session.commit()
    ids = [job_id for job_id, _ in stale_queued_jobs(session=db_session, republish_after_s=50)]
    assert job.id in ids and fresh.id not in ids
    again = [job_id for job_id, _ in stale_queued_jobs(session=db_session, republish_after_s=50)]
    assert job.id not in again


def write_events(path: Path, events: list[dict[str, object]]) -> None:
    with path.open("a") as handle:
        for event in events:
            handle.write(json.dumps({"v": 1, "time": 0.0, "stage": "reward", **event}) + "\n")


def metric_rows(db_session, job_id: int) -> list[tuple[str, int, float]]:  # type: ignore[no-untyped-def]
    query = select(Metric.name, Metric.step, Metric.value).where(Metric.job_id == job_id)
    return sorted((n, s, v) for n, s, v in db_session.execute(query.order_by(Metric.step)))


def test_ingesting_the_same_events_twice_stores_each_metric_once(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job, lease = running_job(db_session, expired=False)
    events = tmp_path / "events.jsonl"
    write_events(
        events,
        [
            {"seq": 0, "type": "status", "status": "started", "message": "go"},
            {"seq": 1, "type": "metric", "step": 1, "metrics": {"train/loss": 0.9, "train/accuracy": None}},
            {
                "seq": 2,
                "type": "progress",
                "step": 1,
                "total_steps": 4,
                "epoch": 0.2,
                "fraction": 0.25,
                "eta_s": 3,
            },
            {"seq": 3, "type": "metric", "step": 2, "metrics": {"train/loss": 0.8}},
        ],
    )
    for _ in range(2):  # a fresh reader from the start of the file, like a restarted worker
        db_session.refresh(job)
        batch = digest(EventTail(events).read_new(), from_seq=job.ingest_seq)
        assert store(db_session, lease=lease, batch=batch, output_key="jobs/1", tail=None)  # type: ignore[arg-type]
    assert metric_rows(db_session, job.id) == [("train/loss", 1, 0.9), ("train/loss", 2, 0.8)]
    db_session.refresh(job)
    assert (job.ingest_seq, job.current_step, job.total_steps, job.progress) == (4, 1, 4, 0.25)
    # A resumed run emits step 2 again (after its checkpoint at step 1), continuing the seq numbers.
    write_events(events, [{"seq": 4, "type": "metric", "step": 2, "metrics": {"train/loss": 0.7}}])
    batch = digest(EventTail(events).read_new(), from_seq=job.ingest_seq)
    assert store(db_session, lease=lease, batch=batch, output_key="jobs/1", tail=None)  # type: ignore[arg-type]
    assert metric_rows(db_session, job.id) == [("train/loss", 1, 0.9), ("train/loss", 2, 0.7)]


def test_a_torn_last_line_waits_for_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"v": 1, "seq": 0, "type": "status"}\n{"v": 1, "seq": 1, "ty')
    tail = EventTail(path)
    assert [e["seq"] for e in tail.read_new()] == [0]
    with path.open("a") as handle:
        handle.write('pe": "metric", "step": 1, "metrics": {}}\n')
    assert [e["seq"] for e in tail.read_new()] == [1]


def test_a_worker_without_the_lease_stores_no_metrics(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job, lease = running_job(db_session)
    reap_expired_leases(session=db_session, lease_seconds=60)
    events = tmp_path / "events.jsonl"
    write_events(events, [{"seq": 0, "type": "metric", "step": 1, "metrics": {"train/loss": 1.0}}])
    batch = digest(EventTail(events).read_new(), from_seq=0)
    assert store(db_session, lease=lease, batch=batch, output_key=None, tail=None) is False  # type: ignore[arg-type]
    assert metric_rows(db_session, job.id) == []


def test_the_self_stop_timeout_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(ValueError, match="JOB_SELF_STOP_SECONDS"):
        Settings(job_lease_seconds=10, job_self_stop_seconds=10)
    assert Settings(job_lease_seconds=10, job_self_stop_seconds=5).job_self_stop_seconds == 5
