"""Rounds from the worker's side: the hook after a round's job finished, and the beat task that
advances active rounds (docs/rounds.md). Both run the state machine of
backend/services/rounds/lifecycle.py in their own transactions, after the job's final state
committed, and publish the jobs it submitted afterwards."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from backend.db.models import TrainingJob
from backend.services.jobs_submit import mark_published
from backend.services.rounds.lifecycle import active_round_ids, advance_round, on_job_finished
from worker.publish import publish_job

logger = logging.getLogger(__name__)


def _publish(session: Session, job_ids: list[int]) -> None:
    for job_id in job_ids:
        job = session.get(TrainingJob, job_id)
        if job is not None and publish_job(job_id, job.queue):
            mark_published(session=session, job_id=job_id)


def after_job_finished(job_id: int, *, sessions: sessionmaker[Session]) -> list[int]:
    """Called once a job reached a final state. A failure here is logged, never raised: the job's
    own outcome stands, and the beat task advances the round later."""
    try:
        with sessions() as session:
            published = on_job_finished(session=session, job_id=job_id)
            _publish(session, published)
    except Exception:
        logger.exception("advancing the round of job %s failed; the beat task will retry", job_id)
        return []
    return published


def advance_active_rounds(*, sessions: sessionmaker[Session]) -> dict[str, Any]:
    """The beat task's body: every active round once (closes collection when enough pairs are
    decided, and moves a round whose job-finished hook was lost)."""
    with sessions() as session:
        round_ids = active_round_ids(session=session)
    published: dict[int, list[int]] = {}
    for round_id in round_ids:
        try:
            with sessions() as session:
                ids = advance_round(session=session, round_id=round_id)
                _publish(session, ids)
        except Exception:
            logger.exception("advancing round %s failed", round_id)
            continue
        if ids:
            published[round_id] = ids
    return {"rounds": round_ids, "published": published}
