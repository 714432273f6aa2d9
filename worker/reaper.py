"""The beat task's body: reap expired leases, re-publish lost messages (docs/design/reliability.md B3).

Decisions are made and committed in Postgres first (backend/services/jobs_reaper.py); messages go
out afterwards, so a worker never wakes up for a row it cannot see yet.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.services.jobs_reaper import reap_expired_leases, stale_queued_jobs
from backend.services.jobs_submit import mark_published
from worker.publish import publish_job
from worker.rounds import after_job_finished

logger = logging.getLogger(__name__)


def reap(*, settings: Settings, sessions: sessionmaker[Session]) -> dict[str, Any]:
    with sessions() as session:
        result = reap_expired_leases(session=session, lease_seconds=settings.job_lease_seconds)
        stale = stale_queued_jobs(session=session, republish_after_s=settings.job_republish_after_s)
        result.republish = [job_id for job_id, _ in stale]
        result.queues.update(stale)
        for job_id in result.requeued:
            if publish_job(job_id, result.queues[job_id]):
                mark_published(session=session, job_id=job_id)
        for job_id in result.republish:
            publish_job(job_id, result.queues[job_id])  # published_at moved to now with the decision
    for job_id in result.failed + result.cancelled:  # final now: their rounds move on
        after_job_finished(job_id, sessions=sessions)
    if result.requeued or result.failed or result.cancelled or result.republish:
        logger.warning(
            "reaper: requeued %s, failed %s, cancelled %s, republished %s",
            result.requeued,
            result.failed,
            result.cancelled,
            result.republish,
        )
    return {
        "requeued": result.requeued,
        "failed": result.failed,
        "cancelled": result.cancelled,
        "republished": result.republish,
    }
