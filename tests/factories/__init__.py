"""Factories that build rows through the real services (so tests exercise the same paths)."""

from __future__ import annotations

import itertools
import re

from sqlalchemy.orm import Session

from backend.db.models import User
from backend.domain.enums import UserRole
from backend.services.users import create_user

DEFAULT_PASSWORD = "correct-horse-battery"
_counter = itertools.count(1)


def make_user(
    session: Session,
    *,
    role: UserRole = UserRole.annotator,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
) -> User:
    email = email or f"{role.value}{next(_counter)}@example.test"
    return create_user(session=session, email=email, password=password, role=role)


def login_form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "login page has no CSRF field"
    return match.group(1)


def login(client, email: str, password: str = DEFAULT_PASSWORD):  # type: ignore[no-untyped-def]
    """Log in through the real form; returns the response of the POST."""
    page = client.get("/login")
    token = login_form_token(page.text)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})
