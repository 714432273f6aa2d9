"""Publishing a job's wake-up message from inside the worker (requeue, reaper)."""

from __future__ import annotations

import logging

from backend.domain import task_names
from worker.celery_app import get_app

logger = logging.getLogger(__name__)


def publish_job(job_id: int, queue: str) -> bool:
    """Send RUN_TRAINING_JOB to the job's queue; a failure is logged and left to the reaper."""
    try:
        get_app().send_task(task_names.RUN_TRAINING_JOB, args=[job_id], queue=queue)
    except Exception:
        logger.exception("could not publish job %s; the reaper will", job_id)
        return False
    return True
