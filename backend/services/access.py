"""Object-level authorization: which projects, assignments and annotations a user may see.

Every lookup by id goes through these helpers, and an object the caller may not see raises
NotFound, exactly like one that does not exist, so ids cannot be probed (docs/design/reliability.md C6).
Admins see every project; annotators and reviewers see the projects they are members of.
"""

from __future__ import annotations

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from backend.db.models import Project, ProjectMember, User
from backend.domain.enums import UserRole
from backend.domain.errors import NotFound


def is_member(session: Session, *, user_id: int, project_id: int) -> bool:
    query = select(exists().where(ProjectMember.user_id == user_id, ProjectMember.project_id == project_id))
    return bool(session.scalar(query))


def can_see_project(session: Session, *, user: User, project_id: int) -> bool:
    return user.role is UserRole.admin or is_member(session, user_id=user.id, project_id=project_id)


def visible_project(session: Session, *, user: User, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None or not can_see_project(session, user=user, project_id=project_id):
        raise NotFound(f"project {project_id} not found")
    return project


def visible_projects_query(user: User) -> Select[Project]:
    query = select(Project).order_by(Project.name)
    if user.role is not UserRole.admin:
        member_of = select(ProjectMember.project_id).where(ProjectMember.user_id == user.id)
        query = query.where(Project.id.in_(member_of))
    return query


def visible_project_ids(session: Session, *, user: User) -> list[int]:
    return [p.id for p in session.scalars(visible_projects_query(user))]
