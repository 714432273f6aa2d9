"""All JSON routes under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.routes import (
    accounts,
    data,
    job_metrics,
    jobs,
    me,
    models,
    projects,
    quality,
    queue,
    red_team,
    review,
    rounds,
)

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
# The annotator's claim and submit are by far the most frequent requests: routes are matched in
# order, so they come first.
api_router.include_router(queue.router)
api_router.include_router(me.router)
api_router.include_router(accounts.router)
api_router.include_router(projects.router)
api_router.include_router(review.router)
api_router.include_router(quality.router)
api_router.include_router(data.router)
api_router.include_router(models.router)
api_router.include_router(job_metrics.router)
api_router.include_router(jobs.router)
api_router.include_router(rounds.router)
api_router.include_router(red_team.router)
