"""A real Celery worker process takes a task from the real broker and writes to Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from backend.db.models import WorkerHeartbeat
from backend.domain import task_names
from tests.support.processes import PYTHON, child_env, start, stop


@pytest.fixture
def celery_worker_process(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[str]:
    """A worker consuming a queue of its own, so parallel runs on a shared broker never mix."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    proc = start(
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "worker.celery_app",
            "worker",
            "-Q",
            queue,
            "-c",
            "1",
            "--pool",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
            "-n",
            f"{queue}@%h",
        ],
        env=child_env(DATABASE_URL=database_url, REDIS_URL=redis_url),
        log=log,
    )
    try:
        yield queue
    finally:
        stop(proc)


def test_ping_round_trips_through_broker_and_writes_a_row(
    celery_worker_process: str, database_url: str
) -> None:
    from celery import Celery

    from backend.config import get_settings

    settings = get_settings()
    client = Celery("test-client", broker=settings.redis_url, backend=settings.redis_url)
    result = client.send_task(task_names.PING, queue=celery_worker_process)
    answer = result.get(timeout=60)
    assert answer["worker_id"].startswith(celery_worker_process)
    engine = create_engine(database_url)
    with Session(engine) as session:
        row = session.scalar(select(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == answer["worker_id"]))
    engine.dispose()
    assert row is not None
    assert row.pid == answer["pid"]
    assert celery_worker_process in row.queues


def test_effective_celery_config_matches_the_reliability_baseline(redis_url: str) -> None:
    from worker.celery_app import get_app

    conf = get_app().conf
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.broker_transport_options["visibility_timeout"] > 0
    assert {q.name for q in conf.task_queues} == {task_names.DEFAULT_QUEUE, task_names.GPU_QUEUE}
    assert conf.task_routes[task_names.RUN_TRAINING_JOB]["queue"] == task_names.GPU_QUEUE


def test_short_tasks_have_time_limits_and_the_training_run_has_none(redis_url: str) -> None:
    """A task-level None falls back to the global limit, so there is none: a training run lasts hours."""
    import worker.tasks  # noqa: F401 (registers the tasks)
    from worker.celery_app import get_app

    app = get_app()
    assert app.conf.task_time_limit is None and app.conf.task_soft_time_limit is None
    run = app.tasks[task_names.RUN_TRAINING_JOB]
    assert run.time_limit is None and run.soft_time_limit is None and run.acks_late is True
    for name in (task_names.PING, task_names.REAP_EXPIRED_LEASES):
        task = app.tasks[name]
        assert 0 < task.soft_time_limit < task.time_limit, name
    reaper = app.conf.beat_schedule["reap-expired-leases"]
    assert reaper["task"] == task_names.REAP_EXPIRED_LEASES
    assert reaper["schedule"] == get_app().conf.beat_schedule["reap-expired-leases"]["schedule"] > 0
