"""Celery tasks. Thin: they take IDs, and the work happens in services over Postgres."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import signals
from sqlalchemy.dialects.postgresql import insert

from backend.db.base import utcnow
from backend.db.models import WorkerHeartbeat
from backend.db.session import session_scope
from backend.domain import task_names
from worker.celery_app import get_app

logger = logging.getLogger(__name__)
app = get_app()


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


@app.task(name=task_names.PING, bind=True)
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
