"""Small read queries about users that several routes need, kept out of the routes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import User


def get_emails(*, session: Session, user_ids: Iterable[int]) -> dict[int, str]:
    """The e-mail of each given user that exists, by id (unknown ids are simply absent)."""
    wanted = set(user_ids)
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(wanted))).all()
    return {user_id: email for user_id, email in rows}


def get_display_names(*, session: Session, user_ids: Iterable[int]) -> dict[int, str]:
    """The display name of each given user that exists, by id (unknown ids are simply absent)."""
    wanted = set(user_ids)
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(wanted))).all()
    return {user_id: name for user_id, name in rows}


def list_active_users(*, session: Session) -> Sequence[User]:
    """Every active account, by e-mail (the people an admin may add to a project)."""
    return session.scalars(select(User).where(User.is_active.is_(True)).order_by(User.email)).all()
