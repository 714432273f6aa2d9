"""Projects: read (members and admins), create and edit (admins), members, progress."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from backend.api.schemas.common import ERROR_RESPONSES
from backend.api.schemas.projects import MemberRead, ProgressRead, ProjectCreate, ProjectRead, ProjectUpdate
from backend.domain.enums import TokenScope, UserRole
from backend.edge.deps import ALL_ROLES, DbDep, Principal, require
from backend.services.access import visible_project
from backend.services.progress import progress
from backend.services.project_lookup import list_visible_projects
from backend.services.projects import (
    ProjectChanges,
    add_member,
    create_project,
    list_members,
    remove_member,
    update_project,
)

router = APIRouter(tags=["projects"], responses=ERROR_RESPONSES)
Anyone = Annotated[Principal, Depends(require(*ALL_ROLES))]
Admin = Annotated[Principal, Depends(require(UserRole.admin, scope=TokenScope.admin))]


def _changes(body: ProjectCreate | ProjectUpdate) -> ProjectChanges:
    data = body.model_dump(exclude_unset=isinstance(body, ProjectUpdate))
    return ProjectChanges(**data)


@router.get("/projects", response_model=list[ProjectRead], summary="Projects you can see")
def read_projects(db: DbDep, principal: Anyone) -> list[ProjectRead]:
    return [ProjectRead.model_validate(p) for p in list_visible_projects(session=db, user=principal.user)]


@router.post(
    "/projects",
    response_model=ProjectRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create a project (default taxonomy: the 14 BeaverTails categories)",
)
def create_project_route(body: ProjectCreate, db: DbDep, principal: Admin) -> ProjectRead:
    return ProjectRead.model_validate(
        create_project(session=db, actor=principal.user, changes=_changes(body))
    )


@router.get("/projects/{project_id}", response_model=ProjectRead, summary="Read a project")
def read_project(project_id: int, db: DbDep, principal: Anyone) -> ProjectRead:
    return ProjectRead.model_validate(visible_project(db, user=principal.user, project_id=project_id))


@router.patch("/projects/{project_id}", response_model=ProjectRead, summary="Edit a project")
def patch_project(project_id: int, body: ProjectUpdate, db: DbDep, principal: Admin) -> ProjectRead:
    project = visible_project(db, user=principal.user, project_id=project_id)
    changed = update_project(session=db, actor=principal.user, project=project, changes=_changes(body))
    return ProjectRead.model_validate(changed)


@router.get("/projects/{project_id}/members", response_model=list[MemberRead], summary="Members of a project")
def read_members(project_id: int, db: DbDep, principal: Admin) -> list[MemberRead]:
    project = visible_project(db, user=principal.user, project_id=project_id)
    return [
        MemberRead(id=u.id, email=u.email, display_name=u.display_name, role=u.role.value)
        for u in list_members(session=db, project=project)
    ]


@router.put(
    "/projects/{project_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Add a user to a project (idempotent)",
)
def put_member(project_id: int, user_id: int, db: DbDep, principal: Admin) -> Response:
    project = visible_project(db, user=principal.user, project_id=project_id)
    add_member(session=db, actor=principal.user, project=project, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/projects/{project_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a user from a project",
)
def delete_member(project_id: int, user_id: int, db: DbDep, principal: Admin) -> Response:
    project = visible_project(db, user=principal.user, project_id=project_id)
    remove_member(session=db, actor=principal.user, project=project, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/projects/{project_id}/progress", response_model=ProgressRead, summary="Your progress in a project"
)
def read_progress(project_id: int, db: DbDep, principal: Anyone) -> ProgressRead:
    visible_project(db, user=principal.user, project_id=project_id)
    result = progress(db, user_id=principal.user.id, project_id=project_id)
    return ProgressRead(**dataclasses.asdict(result))
