"""Celery *client* for the web process: sends tasks by name, only after the DB commit.

The web process never imports the worker package; a task is addressed by its name constant.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from celery import Celery

from backend.config import get_settings
from backend.domain import task_names

logger = logging.getLogger(__name__)

TASK_ROUTES = task_names.TASK_ROUTES


@lru_cache(maxsize=1)
def client() -> Celery:
    settings = get_settings()
    app = Celery("saferlhf-client", broker=settings.redis_url, backend=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_routes=TASK_ROUTES,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout_s},
    )
    return app


def send(name: str, *args: Any, queue: str | None = None) -> str:
    """Publish a task. Call this after the transaction that created its rows has committed, so a
    worker never wakes up for a row it cannot see. If publishing fails, the row stays queued in
    Postgres and the reaper re-publishes it."""
    route = TASK_ROUTES.get(name, {"queue": task_names.DEFAULT_QUEUE})
    result = client().send_task(name, args=list(args), queue=queue or route["queue"])
    return str(result.id)
