"""Red-team pages: members write adversarial prompts aimed at a harm category and see how theirs
fared (/red-team); reviewers and admins accept or reject them (/review/red-team). Plain forms:
303 on success; on error the page comes back with the message and everything typed kept."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from backend.db.models import Project
from backend.domain.enums import UserRole
from backend.domain.errors import DomainError, NotFound
from backend.edge.deps import ALL_ROLES, DbDep, Principal, require
from backend.services.access import can_see_project, visible_project
from backend.services.project_lookup import list_visible_projects
from backend.services.red_team import (
    REVIEW_STATES,
    get_red_team_prompt,
    list_red_team_prompts,
    red_team_counts,
    review_red_team_prompt,
    submit_red_team_prompt,
)
from backend.services.user_lookup import get_display_names
from backend.web.annotate_pages import category_names
from backend.web.forms import PageForm, form_text
from backend.web.pages import render, see_other

router = APIRouter(include_in_schema=False)
Anyone = Annotated[Principal, Depends(require(*ALL_ROLES))]
Reviewer = Annotated[Principal, Depends(require(UserRole.reviewer, UserRole.admin))]
MINE_SHOWN = 100
REVIEW_SHOWN = 200


def _chosen(projects: list[Project], raw: str) -> Project | None:
    """The project asked for by ?project=, else the first one; an unknown id is not found."""
    if not raw:
        return projects[0] if projects else None
    chosen = next((p for p in projects if str(p.id) == raw), None)
    if chosen is None:
        raise NotFound(f"project {raw} not found")
    return chosen


def _intake_context(
    db: DbDep, principal: Principal, projects: list[Project], project: Project | None
) -> dict[str, Any]:
    if project is None:
        return {"projects": projects, "project": None, "form": {}, "errors": {}}
    return {
        "projects": projects,
        "project": project,
        "categories": [{**c, "short": category_names(project)[str(c["key"])]} for c in project.harm_taxonomy],
        "names": category_names(project),
        "counts": red_team_counts(session=db, project_id=project.id, author_id=principal.user_id),
        "mine": list_red_team_prompts(
            session=db, project_id=project.id, author_id=principal.user_id, limit=MINE_SHOWN
        ),
        "form": {},
        "errors": {},
    }


@router.get("/red-team", response_class=HTMLResponse)
def red_team_page(request: Request, db: DbDep, principal: Anyone, project: str = "") -> HTMLResponse:
    projects = list(list_visible_projects(session=db, user=principal.user))
    context = _intake_context(db, principal, projects, _chosen(projects, project))
    return render(request, "red_team/intake.html", principal, context)


def _field_of(error: DomainError) -> str:
    return "harm_category" if error.code.startswith("harm_category") else "prompt"


@router.post("/red-team/{project_id}")
def red_team_submit(
    project_id: int, request: Request, form: PageForm, db: DbDep, principal: Anyone
) -> Response:
    project = visible_project(db, user=principal.user, project_id=project_id)
    text, category = form_text(form, "prompt"), form_text(form, "harm_category")
    try:
        submit_red_team_prompt(
            session=db, caller=principal.caller, project=project, text=text, harm_category=category
        )
    except DomainError as error:
        db.rollback()
        projects = list(list_visible_projects(session=db, user=principal.user))
        context = _intake_context(db, principal, projects, project)
        context["form"] = {"prompt": text, "harm_category": category}
        context["errors"] = {_field_of(error): error.detail}
        return render(request, "red_team/intake.html", principal, context, status=error.status_code)
    return see_other(f"/red-team?project={project.id}", "red_team_submitted")


@router.get("/review/red-team", response_class=HTMLResponse)
def review_red_team(
    request: Request, db: DbDep, principal: Reviewer, project: str = "", state: str = "pending"
) -> HTMLResponse:
    projects = list(list_visible_projects(session=db, user=principal.user))
    chosen = _chosen(projects, project)
    state = state if state in REVIEW_STATES or state == "all" else "pending"
    prompts: list[Any] = []
    authors: dict[int, str] = {}
    counts = None
    if chosen is not None:
        prompts = list(
            list_red_team_prompts(
                session=db,
                project_id=chosen.id,
                review_state=None if state == "all" else state,
                limit=REVIEW_SHOWN,
            )
        )
        ids = {p.author_id for p in prompts if p.author_id is not None}
        authors = get_display_names(session=db, user_ids=ids)
        counts = red_team_counts(session=db, project_id=chosen.id)
    context = {
        "projects": projects,
        "project": chosen,
        "state": state,
        "states": (*REVIEW_STATES, "all"),
        "prompts": prompts,
        "authors": authors,
        "counts": counts,
        "names": category_names(chosen) if chosen else {},
    }
    return render(request, "red_team/review.html", principal, context)


@router.post("/review/red-team/{prompt_id}")
def review_red_team_decide(prompt_id: int, form: PageForm, db: DbDep, principal: Reviewer) -> Response:
    prompt = get_red_team_prompt(session=db, prompt_id=prompt_id)
    if not can_see_project(db, user=principal.user, project_id=prompt.project_id):
        raise NotFound(f"red-team prompt {prompt_id} not found")
    state = form_text(form, "state", "pending")
    back = "/review/red-team?" + urlencode({"project": prompt.project_id, "state": state})
    try:
        review_red_team_prompt(
            session=db, caller=principal.caller, prompt_id=prompt_id, decision=form_text(form, "decision")
        )
    except DomainError as error:
        db.rollback()
        notice = "red_team_in_round" if error.code == "prompt_in_round" else "red_team_bad_decision"
        return see_other(back, notice)
    return see_other(
        back, "red_team_accepted" if form_text(form, "decision") == "accept" else "red_team_rejected"
    )
