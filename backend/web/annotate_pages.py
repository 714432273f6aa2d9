"""The annotator's pages. The workspace works as plain forms (claim, submit, skip: 303 on success,
422 with messages and every answer kept on error); annotate.js enhances it with keyboard
shortcuts and submits through the JSON API so the next pair appears without a page load."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from backend.db.models import Project
from backend.domain.errors import Conflict, InvalidInput
from backend.domain.labels import Position, ResponseLabel, ShownAnswer
from backend.edge.deps import ALL_ROLES, DbDep, Principal, require
from backend.services.access import visible_project
from backend.services.assignments import Task, claim_next, get_task, skip_assignment
from backend.services.progress import progress
from backend.services.project_lookup import list_visible_projects
from backend.services.submissions import submit_annotation
from backend.web.pages import render, see_other

router = APIRouter(include_in_schema=False)
Anyone = Annotated[Principal, Depends(require(*ALL_ROLES))]


def short_label(label: str) -> str:
    """'Hate Speech, Offensive Language' -> 'Hate Speech' (the full label stays as a tooltip)."""
    return label.split(",")[0].strip()


def category_names(project: Project) -> dict[str, str]:
    """Compact display name per category key: the taxonomy's `short`, else the label's head."""
    return {str(c["key"]): str(c.get("short") or short_label(str(c["label"]))) for c in project.harm_taxonomy}


def workspace_context(project: Project, task: Task | None, db: DbDep, principal: Principal) -> dict[str, Any]:
    return {
        "project": project,
        "task": task,
        "categories": [{**c, "short": category_names(project)[str(c["key"])]} for c in project.harm_taxonomy],
        "severities": [s for s in project.severity_levels if int(s["level"]) > 0],
        "progress": progress(db, user_id=principal.user.id, project_id=project.id),
        "idempotency_key": uuid.uuid4().hex,
        "form": {},
        "errors": [],
    }


@router.get("/annotate", response_class=HTMLResponse)
def annotate_index(request: Request, db: DbDep, principal: Anyone) -> Response:
    projects = list_visible_projects(session=db, user=principal.user)
    if len(projects) == 1:
        return see_other(f"/annotate/{projects[0].id}")
    rows = [(p, progress(db, user_id=principal.user.id, project_id=p.id)) for p in projects]
    return render(request, "annotate/index.html", principal, {"rows": rows})


@router.get("/annotate/{project_id}", response_class=HTMLResponse)
def workspace(project_id: int, request: Request, db: DbDep, principal: Anyone) -> HTMLResponse:
    project = visible_project(db, user=principal.user, project_id=project_id)
    task = get_task(session=db, user=principal.user, project_id=project.id)
    return render(
        request, "annotate/workspace.html", principal, workspace_context(project, task, db, principal)
    )


@router.post("/annotate/{project_id}/next")
def claim_from_page(project_id: int, db: DbDep, principal: Anyone) -> Response:
    claim_next(session=db, user=principal.user, project_id=project_id)
    return see_other(f"/annotate/{project_id}")


def _side(form: FormData, side: str, errors: list[str]) -> ResponseLabel:
    safety = str(form.get(f"{side}_safety", ""))
    if safety not in ("safe", "unsafe"):
        errors.append(f"Mark the {side} response safe or unsafe.")
        return ResponseLabel(is_safe=True)
    severity = str(form.get(f"{side}_severity", "") or "0")
    categories = tuple(str(c) for c in form.getlist(f"{side}_categories"))
    return ResponseLabel(
        is_safe=safety == "safe",
        harm_categories=categories,
        severity=int(severity) if severity.isdigit() else -1,
    )


def _position(form: FormData, name: str, question: str, errors: list[str]) -> Position:
    value = str(form.get(name, ""))
    if value not in {p.value for p in Position}:
        errors.append(f"Say which response is {question} (or that they are equal).")
        return Position.equal
    return Position(value)


def parse_answer(form: FormData) -> tuple[ShownAnswer, list[str]]:
    errors: list[str] = []
    left, right = _side(form, "left", errors), _side(form, "right", errors)
    helpful = _position(form, "helpfulness", "more helpful", errors)
    harmless = _position(form, "harmlessness", "more harmless", errors)
    confidence = str(form.get("confidence", ""))
    elapsed = str(form.get("time_spent_ms", "0"))
    answer = ShownAnswer(
        left=left,
        right=right,
        helpfulness=helpful,
        harmlessness=harmless,
        confidence=int(confidence) if confidence.isdigit() else None,
        rationale=str(form.get("rationale", ""))[:5000],
        time_spent_ms=min(int(elapsed), 24 * 3600 * 1000) if elapsed.isdigit() else 0,
    )
    return answer, errors


def _form_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    for side in ("left", "right"):
        values[f"{side}_categories"] = [str(c) for c in form.getlist(f"{side}_categories")]
    return values


@router.post("/annotate/{project_id}/submit", response_class=HTMLResponse)
async def submit_from_page(project_id: int, request: Request, db: DbDep, principal: Anyone) -> Response:
    form = await request.form()
    assignment = str(form.get("assignment_id", ""))
    key = str(form.get("idempotency_key", "")) or uuid.uuid4().hex
    answer, errors = parse_answer(form)

    def attempt() -> Response | None:
        if not assignment.isdigit():
            raise InvalidInput("This form is missing its pair; reload the page.")
        if errors:
            raise InvalidInput(" ".join(errors))
        try:
            submit_annotation(
                session=db,
                user=principal.user,
                assignment_id=int(assignment),
                answer=answer,
                idempotency_key=key,
            )
        except Conflict as exc:
            claim_next(session=db, user=principal.user, project_id=project_id)
            notice = (
                "lease_lost"
                if exc.code in ("lease_expired", "overlap_reached", "comparison_retired")
                else None
            )
            return see_other(f"/annotate/{project_id}", notice)
        claim_next(session=db, user=principal.user, project_id=project_id)
        return see_other(f"/annotate/{project_id}", "submitted")

    try:
        return await run_in_threadpool(attempt) or see_other(f"/annotate/{project_id}")
    except InvalidInput as exc:
        message = exc.detail
    return await run_in_threadpool(lambda: _rerender(request, db, principal, project_id, form, key, message))


def _rerender(
    request: Request, db: DbDep, principal: Principal, project_id: int, form: FormData, key: str, message: str
) -> HTMLResponse:
    project = visible_project(db, user=principal.user, project_id=project_id)
    task = get_task(session=db, user=principal.user, project_id=project.id)
    context = workspace_context(project, task, db, principal)
    context.update(form=_form_values(form), errors=[message], idempotency_key=key)
    return render(request, "annotate/workspace.html", principal, context, status=422)


@router.post("/annotate/{project_id}/skip")
async def skip_from_page(project_id: int, request: Request, db: DbDep, principal: Anyone) -> Response:
    form = await request.form()
    assignment = str(form.get("assignment_id", ""))

    def attempt() -> None:
        if assignment.isdigit():
            skip_assignment(session=db, user=principal.user, assignment_id=int(assignment))
        claim_next(session=db, user=principal.user, project_id=project_id)

    await run_in_threadpool(attempt)
    return see_other(f"/annotate/{project_id}", "skipped")
