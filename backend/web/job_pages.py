"""Admin pages for training jobs: the list, one job with its live progress and metric charts, and
the cancel and retry buttons. Also serves plotly.min.js from the installed plotly package, so the
charts need no CDN and no copy of the library in the repository."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy.orm import Session

from backend import queue
from backend.db.base import utcnow
from backend.db.models import TrainingJob
from backend.domain import task_names
from backend.domain.enums import JobState, UserRole
from backend.domain.errors import Conflict, NotFound
from backend.edge.deps import DbDep, Principal, public, require
from backend.services.artifact_lookup import get_snapshot
from backend.services.jobs_submit import cancel_job, get_job, list_jobs, mark_published, retry_job
from backend.services.models import get_model, list_models_of_job
from backend.services.project_lookup import get_project, get_project_names
from backend.web.pages import render, see_other
from backend.web.security import CSP

router = APIRouter(include_in_schema=False)
Admin = Annotated[Principal, Depends(require(UserRole.admin))]
logger = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
FINAL_STATES = (JobState.succeeded, JobState.failed, JobState.cancelled)
# Plotly adds its stylesheet as an empty <style> element and fills it through CSSOM (insertRule),
# which CSP does not govern. Allowing exactly the empty element's hash lets that work on the chart
# page while every inline style with content, and every inline script, stays blocked. "Save as
# PNG" renders the chart through a blob: image of its own making, hence blob: in img-src.
EMPTY_STYLE_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
CHART_PAGE_CSP = CSP.replace("style-src 'self';", f"style-src 'self' {EMPTY_STYLE_HASH};").replace(
    "img-src 'self' data:;", "img-src 'self' data: blob:;"
)


@lru_cache(maxsize=1)
def plotly_js_path() -> Path:
    """plotly.min.js inside the installed plotly wheel, found without importing the package."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("the plotly package is not installed; run `make install`")
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise NotFound("plotly.min.js is missing from the installed plotly package")
    return path


@router.get("/vendor/plotly.min.js", dependencies=[Depends(public())])
def plotly_js() -> FileResponse:
    return FileResponse(
        plotly_js_path(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def _state_filter(raw: str) -> JobState | None:
    return JobState(raw) if raw in JobState.__members__ else None


@router.get("/admin/jobs", response_class=HTMLResponse)
def jobs_list(request: Request, db: DbDep, principal: Admin, state: str = "") -> HTMLResponse:
    chosen = _state_filter(state)
    jobs = list_jobs(session=db, state=chosen, limit=200)
    project_ids = {j.project_id for j in jobs if j.project_id is not None}
    names = get_project_names(session=db, project_ids=project_ids)
    context = {
        "jobs": jobs,
        "project_names": names,
        "state": chosen,
        "states": list(JobState),
        "now": utcnow(),
    }
    return render(request, "jobs/list.html", principal, context)


def _or_none(lookup: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """A job's inputs are plain ids in JSON, not foreign keys: one may be gone, and the page says so."""
    try:
        return lookup(*args, **kwargs)
    except NotFound:
        return None


def _inputs(db: Session, job: TrainingJob) -> list[dict[str, Any]]:
    """Each named input with a link: the snapshot, or the registered model."""
    rows = []
    for role, value in sorted((job.inputs or {}).items()):
        if not isinstance(value, int):
            continue
        if role == "snapshot_id":
            snapshot = _or_none(get_snapshot, session=db, snapshot_id=value)
            label = f"snapshot {value}" + (f" ({snapshot.content_sha256[:12]})" if snapshot else " (gone)")
            url = f"/api/v1/snapshots/{value}" if snapshot else None
        else:
            model = _or_none(get_model, session=db, model_id=value)
            label = f"{model.kind.value} model {value}: {model.name}" if model else f"model {value} (gone)"
            url = f"/admin/models/{value}" if model else None
        rows.append({"role": role.removesuffix("_id").replace("_", " "), "label": label, "url": url})
    return rows


@router.get("/admin/jobs/{job_id}", response_class=HTMLResponse)
def job_page(job_id: int, request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    job = get_job(session=db, job_id=job_id)
    produced = list_models_of_job(session=db, job_id=job.id)
    project = get_project(session=db, project_id=job.project_id) if job.project_id else None
    context = {
        "job": job,
        "project": project,
        "inputs": _inputs(db, job),
        "produced": produced,
        "final": job.state in FINAL_STATES,
        "can_cancel": job.state in (JobState.queued, JobState.running) and not job.cancel_requested,
        "can_retry": job.state in (JobState.failed, JobState.cancelled),
        "now": utcnow(),
    }
    response = render(request, "jobs/detail.html", principal, context)
    response.headers["Content-Security-Policy"] = CHART_PAGE_CSP
    return response


@router.post("/admin/jobs/{job_id}/cancel")
def cancel_page(job_id: int, db: DbDep, principal: Admin) -> Response:
    try:
        cancel_job(session=db, job_id=job_id)
    except Conflict:
        db.rollback()
        return see_other(f"/admin/jobs/{job_id}", "job_not_cancellable")
    return see_other(f"/admin/jobs/{job_id}", "job_cancelled")


@router.post("/admin/jobs/{job_id}/retry")
def retry_page(job_id: int, db: DbDep, principal: Admin) -> Response:
    try:
        job = retry_job(session=db, job_id=job_id)
    except Conflict:
        db.rollback()
        return see_other(f"/admin/jobs/{job_id}", "job_not_retryable")
    # Published after the commit, as the REST route does; a failed publish leaves the job queued
    # in Postgres, where the reaper publishes it again.
    try:
        queue.send(task_names.RUN_TRAINING_JOB, job.id, queue=job.queue)
        mark_published(session=db, job_id=job.id)
    except Exception:
        logger.warning("job %s: publishing its message failed; the reaper will retry", job.id, exc_info=True)
    return see_other(f"/admin/jobs/{job_id}", "job_retried")
