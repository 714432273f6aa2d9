"""Reviewer pages: projects with disagreements, the review queue, and one comparison with every
vote, the aggregate and an adjudication form (admins also edit overlap, priority and gold here)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from backend.db.models import Comparison
from backend.domain.enums import Choice, UserRole
from backend.domain.errors import InvalidInput
from backend.domain.labels import CanonicalAnswer, ResponseLabel
from backend.edge.deps import DbDep, Principal, require
from backend.services.access import visible_project
from backend.services.comparisons import ComparisonChanges, update_comparison
from backend.services.project_lookup import get_project, list_visible_projects
from backend.services.quality.review import (
    adjudicate,
    comparison_detail,
    count_disagreements,
    next_open_disagreement,
    review_queue,
    visible_comparison,
)
from backend.web.annotate_pages import category_names
from backend.web.pages import render, see_other

router = APIRouter(include_in_schema=False)
Reviewer = Annotated[Principal, Depends(require(UserRole.reviewer, UserRole.admin))]
Admin = Annotated[Principal, Depends(require(UserRole.admin))]
PAGE = 50


@router.get("/review", response_class=HTMLResponse)
def review_index(request: Request, db: DbDep, principal: Reviewer) -> HTMLResponse:
    projects = list_visible_projects(session=db, user=principal.user)
    rows = [(p, count_disagreements(db, project=p)) for p in projects]
    return render(request, "review/index.html", principal, {"rows": rows})


@router.get("/review/projects/{project_id}", response_class=HTMLResponse)
def review_project(
    project_id: int, request: Request, db: DbDep, principal: Reviewer, page: int = 1
) -> HTMLResponse:
    project = visible_project(db, user=principal.user, project_id=project_id)
    page = max(page, 1)
    items = review_queue(db, project=project, limit=PAGE, offset=(page - 1) * PAGE)
    total = count_disagreements(db, project=project)
    return render(
        request,
        "review/queue.html",
        principal,
        {
            "project": project,
            "items": items,
            "page": page,
            "total": total,
            "pages": max((total + PAGE - 1) // PAGE, 1),
        },
    )


def _comparison_context(db: DbDep, comparison: Comparison) -> dict[str, Any]:
    project = get_project(session=db, project_id=comparison.project_id)
    detail = comparison_detail(db, comparison=comparison)
    labels = category_names(project)
    defaults: dict[str, Any] = {}
    agg = detail.aggregate
    if agg is not None:
        defaults = {
            "helpfulness": agg.helpfulness.label.value if agg.helpfulness.label else "",
            "harmlessness": agg.harmlessness.label.value if agg.harmlessness.label else "",
        }
        for side, result in (("a", agg.a), ("b", agg.b)):
            defaults[f"{side}_safety"] = "safe" if result.is_safe else "unsafe"
            defaults[f"{side}_categories"] = list(result.harm_categories)
            defaults[f"{side}_severity"] = str(result.severity)
    return {
        "project": project,
        "detail": detail,
        "comparison": comparison,
        "category_names": labels,
        "defaults": defaults,
    }


@router.get("/review/comparisons/{comparison_id}", response_class=HTMLResponse)
def review_comparison(comparison_id: int, request: Request, db: DbDep, principal: Reviewer) -> HTMLResponse:
    comparison = visible_comparison(db, user=principal.user, comparison_id=comparison_id)
    context = _comparison_context(db, comparison)
    context.update(form={}, errors=[])
    return render(request, "review/comparison.html", principal, context)


def _side(form: FormData, side: str) -> ResponseLabel:
    safe = str(form.get(f"{side}_safety", "")) == "safe"
    if str(form.get(f"{side}_safety", "")) not in ("safe", "unsafe"):
        raise InvalidInput(f"Mark response {side.upper()} safe or unsafe.")
    severity = str(form.get(f"{side}_severity", "0") or "0")
    cats = tuple(str(c) for c in form.getlist(f"{side}_categories"))
    return ResponseLabel(safe, cats, int(severity) if severity.isdigit() else -1)


def parse_adjudication(form: FormData) -> CanonicalAnswer:
    choices = {c.value for c in Choice}
    helpful, harmless = str(form.get("helpfulness", "")), str(form.get("harmlessness", ""))
    if helpful not in choices or harmless not in choices:
        raise InvalidInput("Choose A, B or equal for both helpfulness and harmlessness.")
    return CanonicalAnswer(_side(form, "a"), _side(form, "b"), Choice(helpful), Choice(harmless))


@router.post("/review/comparisons/{comparison_id}/adjudicate", response_class=HTMLResponse)
async def adjudicate_from_page(
    comparison_id: int, request: Request, db: DbDep, principal: Reviewer
) -> Response:
    form = await request.form()

    def attempt() -> Response:
        comparison = visible_comparison(db, user=principal.user, comparison_id=comparison_id)
        try:
            answer = parse_adjudication(form)
            adjudicate(
                session=db,
                reviewer=principal.user,
                comparison=comparison,
                answer=answer,
                note=str(form.get("note", "")),
                promote_to_gold=form.get("promote_to_gold") == "on" and principal.role is UserRole.admin,
            )
        except InvalidInput as exc:
            context = _comparison_context(db, comparison)
            values: dict[str, Any] = {k: str(v) for k, v in form.items() if k != "csrf_token"}
            for side in ("a", "b"):
                values[f"{side}_categories"] = [str(c) for c in form.getlist(f"{side}_categories")]
            context.update(form=values, errors=[exc.detail])
            return render(request, "review/comparison.html", principal, context, status=422)
        return _after_adjudication(db, comparison)

    return await run_in_threadpool(attempt)


def _after_adjudication(db: DbDep, comparison: Comparison) -> Response:
    """On to the next open disagreement, or back to the queue when none is left."""
    upcoming = next_open_disagreement(db, project_id=comparison.project_id, after_id=comparison.id)
    if upcoming is None:
        return see_other(f"/review/projects/{comparison.project_id}", "review_done")
    return see_other(f"/review/comparisons/{upcoming}", "adjudicated_next")


def _number(form: FormData, name: str) -> str:
    return str(form.get(name, "")).strip()


@router.post("/review/comparisons/{comparison_id}/settings", response_class=HTMLResponse)
async def comparison_settings(comparison_id: int, request: Request, db: DbDep, principal: Admin) -> Response:
    form = await request.form()

    def attempt() -> Response:
        comparison = visible_comparison(db, user=principal.user, comparison_id=comparison_id)
        overlap, priority = _number(form, "overlap_target"), _number(form, "priority")
        try:
            changes = ComparisonChanges(
                overlap_target=int(overlap) if overlap else None,
                priority=float(priority) if priority else None,
                retired=form.get("retired") == "on",
            )
            update_comparison(session=db, actor=principal.user, comparison_id=comparison.id, changes=changes)
        except (InvalidInput, ValueError) as exc:
            context = _comparison_context(db, comparison)
            message = exc.detail if isinstance(exc, InvalidInput) else "Overlap and priority must be numbers."
            context.update(form={}, errors=[message])
            return render(request, "review/comparison.html", principal, context, status=422)
        return see_other(f"/review/comparisons/{comparison_id}", "comparison_saved")

    return await run_in_threadpool(attempt)
