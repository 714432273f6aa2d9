"""The quality page: agreement per axis and round, annotator accuracy and bias, ties. Reviewers read
it for the projects they belong to, as admins do for every project; it has no write actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from backend.domain.enums import UserRole
from backend.edge.deps import DbDep, Principal, require
from backend.services.access import visible_project
from backend.services.quality.report import quality_report
from backend.web.annotate_pages import category_names
from backend.web.pages import render

router = APIRouter(include_in_schema=False)
Staff = Annotated[Principal, Depends(require(UserRole.reviewer, UserRole.admin))]


@router.get("/admin/projects/{project_id}/quality", response_class=HTMLResponse)
def quality_page(project_id: int, request: Request, db: DbDep, principal: Staff) -> HTMLResponse:
    project = visible_project(db, user=principal.user, project_id=project_id)
    report = quality_report(db, project=project)
    names = category_names(project)
    return render(
        request,
        "admin/quality.html",
        principal,
        {"project": project, "report": report, "category_names": names},
    )
