"""The Celery application, built lazily from the shared settings.

Start a worker with `saferlhf worker` (or `celery -A worker.celery_app worker -Q default,gpu`).
Queues: `default` for short tasks, `gpu` for training (one job at a time, prefetch 1):
`celery -A worker.celery_app worker -Q gpu -c 1 --prefetch-multiplier 1`, one such worker per GPU,
pinned with CUDA_VISIBLE_DEVICES (see the README and docker-compose.yml).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Celery
from kombu.entity import Queue

from backend.config import Settings, get_settings
from backend.domain import task_names

# Every task except the training run: killed if it runs away (soft limit first, to clean up).
SHORT_TASK_LIMITS: dict[str, Any] = {"soft_time_limit": 120, "time_limit": 180}


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_expires": 3600,
        "task_queues": (Queue(task_names.DEFAULT_QUEUE), Queue(task_names.GPU_QUEUE)),  # type: ignore[no-untyped-call]
        "task_default_queue": task_names.DEFAULT_QUEUE,
        "task_routes": task_names.TASK_ROUTES,
        # Short tasks are idempotent: acknowledge after running, requeue if the worker dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One message at a time per process: a long training job never hoards queued messages.
        "worker_prefetch_multiplier": 1,
        # No global time limits: a task-level None falls back to the global one, which would kill
        # every training run after 3 minutes. Short tasks declare SHORT_TASK_LIMITS instead.
        "task_soft_time_limit": None,
        "task_time_limit": None,
        # Redelivery of unacked messages after this long. Training does not rely on it: its jobs
        # are fenced by DB leases and re-queued by the reaper (docs/design/reliability.md B3).
        "broker_transport_options": {"visibility_timeout": settings.broker_visibility_timeout_s},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "ping": {
                "task": task_names.PING,
                "schedule": 30.0,
                "options": {"queue": task_names.DEFAULT_QUEUE},
            },
            "reap-expired-leases": {
                "task": task_names.REAP_EXPIRED_LEASES,
                "schedule": settings.job_reaper_interval_s,
                "options": {"queue": task_names.DEFAULT_QUEUE, "expires": settings.job_reaper_interval_s},
            },
            "advance-rounds": {
                "task": task_names.ADVANCE_ROUNDS,
                "schedule": settings.round_advance_interval_s,
                "options": {"queue": task_names.DEFAULT_QUEUE, "expires": settings.round_advance_interval_s},
            },
        },
    }


@lru_cache(maxsize=1)
def get_app() -> Celery:
    settings = get_settings()
    app = Celery("saferlhf", broker=settings.redis_url, backend=settings.redis_url, include=["worker.tasks"])
    app.conf.update(celery_config(settings))
    return app


def __getattr__(name: str) -> Celery:
    # `celery -A worker.celery_app` looks up `app`; building it lazily keeps imports side-effect free.
    if name in ("app", "celery"):
        return get_app()
    raise AttributeError(name)
