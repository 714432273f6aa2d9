"""Creating and finding user accounts."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.models import AuditEvent, User
from backend.domain.enums import UserRole
from backend.domain.errors import Conflict, InvalidInput, NotFound
from backend.services.passwords import hash_password

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email) or len(email) > 320:
        raise InvalidInput(f"'{email}' is not an e-mail address", code="invalid_email")
    return email


def create_user(
    *,
    session: Session,
    email: str,
    password: str,
    role: UserRole,
    display_name: str | None = None,
    actor_id: int | None = None,
) -> User:
    email = normalise_email(email)
    user = User(
        email=email,
        display_name=(display_name or email.split("@")[0]).strip()[:200],
        role=role,
        password_hash=hash_password(password),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"a user with e-mail {email} already exists", code="user_exists") from exc
    session.add(
        AuditEvent(
            actor_id=actor_id,
            action="user.create",
            object_type="user",
            object_id=user.id,
            detail={"role": role.value},
        )
    )
    session.commit()
    return user


def get_user(*, session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def find_user_by_email(*, session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def count_admins(*, session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(User).where(User.role == UserRole.admin)) or 0)
