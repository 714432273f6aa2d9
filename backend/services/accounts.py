"""User management by admins: list, change role, (de)activate, reset passwords."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.db.models import AuditEvent, User, UserSession
from backend.domain.enums import UserRole
from backend.domain.errors import Conflict, InvalidInput, NotFound
from backend.services.passwords import hash_password


@dataclass(frozen=True)
class UserChanges:
    display_name: str | None = None
    role: UserRole | None = None
    is_active: bool | None = None
    password: str | None = None


def list_users(*, session: Session, role: UserRole | None = None) -> list[User]:
    query = select(User).order_by(User.email)
    if role is not None:
        query = query.where(User.role == role)
    return list(session.scalars(query))


def _active_admins(session: Session) -> int:
    query = (
        select(func.count()).select_from(User).where(User.role == UserRole.admin, User.is_active.is_(True))
    )
    return int(session.scalar(query) or 0)


def update_user(*, session: Session, actor: User, user_id: int, changes: UserChanges) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    loses_admin = (
        user.role is UserRole.admin
        and user.is_active
        and ((changes.role is not None and changes.role is not UserRole.admin) or changes.is_active is False)
    )
    if loses_admin and _active_admins(session) <= 1:
        raise Conflict("this is the last active admin; make someone else admin first", code="last_admin")
    if changes.display_name is not None:
        name = changes.display_name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidInput("the display name must have 1-200 characters", code="invalid_name")
        user.display_name = name
    if changes.role is not None:
        user.role = changes.role
    if changes.is_active is not None:
        user.is_active = changes.is_active
    if changes.password is not None:
        user.password_hash = hash_password(changes.password)
    if changes.password is not None or changes.is_active is False:
        # A reset password or a disabled account ends every session of that user.
        session.execute(
            update(UserSession)
            .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    detail = {
        k: (v.value if isinstance(v, UserRole) else v) for k, v in vars(changes).items() if v is not None
    }
    detail.pop("password", None)
    session.add(
        AuditEvent(
            actor_id=actor.id,
            action="user.update",
            object_type="user",
            object_id=user.id,
            detail={**detail, "password_reset": changes.password is not None},
        )
    )
    session.commit()
    return user
