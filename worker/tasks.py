"""Celery tasks. Thin: they take IDs, and the work happens in services over Postgres."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import signals
from sqlalchemy.dialects.postgresql import insert

from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.models import WorkerHeartbeat
from backend.db.session import get_engine, get_sessionmaker, session_scope
from backend.domain import task_names
from backend.services.jobs_submit import mark_published
from worker.celery_app import SHORT_TASK_LIMITS, get_app
from worker.publish import publish_job
from worker.reaper import reap
from worker.rounds import advance_active_rounds, after_job_finished
from worker.runner import run_job

logger = logging.getLogger(__name__)
app = get_app()
FINAL_OUTCOMES = frozenset({"succeeded", "failed", "cancelled"})


def record_heartbeat(worker_id: str, queues: str) -> dict[str, Any]:
    now = utcnow()
    stmt = insert(WorkerHeartbeat).values(
        worker_id=worker_id, hostname=socket.gethostname(), pid=os.getpid(), queues=queues, last_seen_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[WorkerHeartbeat.worker_id],
        set_={"last_seen_at": now, "pid": os.getpid(), "queues": queues},
    )
    with session_scope() as session:
        session.execute(stmt)
    return {"worker_id": worker_id, "pid": os.getpid(), "seen_at": now.isoformat()}


@app.task(name=task_names.PING, bind=True, **SHORT_TASK_LIMITS)
def ping(self: Any) -> dict[str, Any]:
    """Proves the round trip API -> broker -> worker -> Postgres, and records the worker's liveness."""
    hostname = getattr(self.request, "hostname", None) or socket.gethostname()
    queue = (getattr(self.request, "delivery_info", None) or {}).get("routing_key", "default")
    return record_heartbeat(str(hostname), str(queue))


@signals.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    """Record the worker as alive as soon as it consumes, before the first beat ping."""
    hostname = str(getattr(sender, "hostname", None) or socket.gethostname())
    try:
        consume_from = sender.app.amqp.queues.consume_from or {}
        queues = ",".join(sorted(consume_from)) or task_names.DEFAULT_QUEUE
    except AttributeError:
        queues = task_names.DEFAULT_QUEUE
    try:
        record_heartbeat(hostname, queues)
    except Exception:  # a DB outage at start-up must not kill the worker; the beat ping retries
        logger.exception("could not record the worker heartbeat")


# Training runs for hours: no time limit (the job's lease and the reaper bound a lost worker), and
# the message is acknowledged late, but the row, not the message, decides who runs it.
@app.task(name=task_names.RUN_TRAINING_JOB, acks_late=True, time_limit=None, soft_time_limit=None)
def run_training_job(job_id: int) -> dict[str, Any]:
    outcome = run_job(int(job_id), settings=get_settings(), sessions=get_sessionmaker())
    if outcome.publish and publish_job(outcome.job_id, outcome.queue):
        with session_scope() as session:
            mark_published(session=session, job_id=outcome.job_id)
    if outcome.outcome in FINAL_OUTCOMES:  # the job's final state is committed: its round moves on
        after_job_finished(outcome.job_id, sessions=get_sessionmaker())
    logger.info("job %s: %s %s", outcome.job_id, outcome.outcome, outcome.detail)
    return {"job_id": outcome.job_id, "outcome": outcome.outcome, "detail": outcome.detail}


@app.task(name=task_names.REAP_EXPIRED_LEASES, **SHORT_TASK_LIMITS)
def reap_expired_leases() -> dict[str, Any]:
    return reap(settings=get_settings(), sessions=get_sessionmaker())


@app.task(name=task_names.ADVANCE_ROUNDS, **SHORT_TASK_LIMITS)
def advance_rounds() -> dict[str, Any]:
    return advance_active_rounds(sessions=get_sessionmaker())


@signals.worker_process_init.connect
def _fresh_connections_in_child(**_: Any) -> None:
    """A pool child must not share the parent's database connections across fork."""
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=False)
