"""Request dependencies: settings, DB session, and who is calling (session cookie or API token).

Authorization denies by default: every route declares a `require(...)` policy, and the test suite
fails when a route has none (tests/backend/test_rbac_matrix.py).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from backend.config import Settings, get_settings
from backend.db.session import get_sessionmaker
from backend.domain.enums import TokenScope, UserRole
from backend.domain.errors import Forbidden, NotAuthenticated
from backend.edge.principal import (
    ROLE_SCOPES,
    Policy,
    Principal,
    authorize,
    principal_from_session,
    principal_from_token,
)
from backend.services.sessions import resolve_session

__all__ = ["ROLE_SCOPES", "Policy", "Principal", "require", "public", "optional_principal"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_cookie_name(settings: Settings) -> str:
    # The __Host- prefix makes browsers refuse the cookie unless it is Secure, host-only and Path=/.
    return "__Host-saferlhf_session" if settings.cookie_secure else "saferlhf_session"


async def get_app_settings(request: Request) -> Settings:
    # async: no I/O here, so no trip through the threadpool.
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One session per request. Creating it does no I/O, so this runs on the event loop rather
    than costing two trips through the threadpool on every request; only a close that must roll
    back an unfinished transaction (a request that failed midway) goes to a thread."""
    factory = getattr(request.app.state, "sessionmaker", None) or get_sessionmaker()
    session = factory()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
DbDep = Annotated[Session, Depends(get_db)]


def optional_principal(request: Request, db: DbDep, settings: SettingsDep) -> Principal | None:
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    principal: Principal | None = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        principal = principal_from_token(db, auth[7:].strip())
        if principal is None:
            raise NotAuthenticated("the API token is invalid, expired or revoked", code="bad_token")
    else:
        cookie = request.cookies.get(session_cookie_name(settings))
        record = resolve_session(session=db, settings=settings, cookie_value=cookie) if cookie else None
        if record is not None:
            principal = principal_from_session(record)
    request.state.principal = principal
    return principal


async def _submitted_csrf(request: Request) -> str:
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


async def check_csrf(request: Request, principal: Principal) -> None:
    """Cookie-authenticated unsafe requests must echo the session's CSRF token. Bearer-token calls
    are exempt: browsers never attach them by themselves."""
    if principal.via != "session" or request.method in SAFE_METHODS:
        return
    assert principal.session_record is not None
    sent = await _submitted_csrf(request)
    if not sent or not hmac.compare_digest(sent, principal.session_record.csrf_token):
        raise Forbidden("missing or wrong CSRF token; reload the page and try again", code="csrf_failed")


def require(*roles: UserRole, scope: TokenScope | None = None) -> Callable[..., object]:
    policy = Policy(roles=frozenset(roles), scope=scope)

    async def dependency(
        request: Request, principal: Annotated[Principal | None, Depends(optional_principal)]
    ) -> Principal:
        allowed = authorize(principal, policy)
        await check_csrf(request, allowed)
        return allowed

    dependency.policy = policy  # type: ignore[attr-defined]
    return dependency


def public() -> Callable[..., object]:
    """Explicitly public (login page, health check). Being explicit is what default-deny checks."""

    async def dependency() -> None:
        return None

    dependency.policy = Policy(public=True)  # type: ignore[attr-defined]
    return dependency


ALL_ROLES = (UserRole.annotator, UserRole.reviewer, UserRole.admin)
