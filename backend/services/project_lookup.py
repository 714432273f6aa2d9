"""Read queries about projects that routes and pages share, so that none builds its own query."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from backend.db.models import Project, User
from backend.services.access import visible_projects_query


def list_visible_projects(*, session: Session, user: User) -> Sequence[Project]:
    """The projects `user` may see (all of them for an admin, else those they are a member of), by name."""
    return session.scalars(visible_projects_query(user)).all()
