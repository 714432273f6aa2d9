"""Read queries about projects that routes and pages share, so that none builds its own query."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import Project, User
from backend.domain.errors import NotFound
from backend.services.access import visible_projects_query


def list_visible_projects(*, session: Session, user: User) -> Sequence[Project]:
    """The projects `user` may see (all of them for an admin, else those they are a member of), by name."""
    return session.scalars(visible_projects_query(user)).all()


def get_project(*, session: Session, project_id: int) -> Project:
    """The project by id, whoever asks (callers that act for a user use access.visible_project)."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"project {project_id} not found")
    return project


def get_project_names(*, session: Session, project_ids: Iterable[int] | None = None) -> dict[int, str]:
    """Project names by id: of the given projects (unknown ids are simply absent), or of all."""
    query = select(Project.id, Project.name)
    if project_ids is not None:
        wanted = set(project_ids)
        if not wanted:
            return {}
        query = query.where(Project.id.in_(wanted))
    return {project_id: name for project_id, name in session.execute(query).all()}
