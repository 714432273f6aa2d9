"""Who is calling, and may they: the API token lookup, the principal it yields, route policies.

Used by the FastAPI dependencies (deps.py). The token lookup runs on every API call, so it is one
prepared statement (backend/db/raw.py) and loads no ORM objects; the user row is loaded only when a
route asks for ``principal.user``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, LiteralString

from sqlalchemy.orm import Session

from backend.db import raw
from backend.db.base import utcnow
from backend.db.models import User, UserSession
from backend.domain.caller import CallerRef
from backend.domain.enums import TokenScope, UserRole
from backend.domain.errors import Forbidden, NotAuthenticated
from backend.services.sessions import sha256_hex

ROLE_SCOPES: dict[UserRole, frozenset[TokenScope]] = {
    UserRole.annotator: frozenset({TokenScope.annotate}),
    UserRole.reviewer: frozenset({TokenScope.annotate, TokenScope.read}),
    UserRole.admin: frozenset({TokenScope.annotate, TokenScope.read, TokenScope.admin}),
}

# A real lookup on every call, so a revoked token stops working on its very next request. Token
# and owner in one round trip, as a prepared statement: this runs on every API call.
TOKEN_SQL: LiteralString = """
SELECT t.id, t.scopes, t.expires_at, t.revoked_at, t.last_used_at, u.id, u.role, u.is_active
FROM api_token t JOIN "user" u ON u.id = t.user_id
WHERE t.token_hash = %(token_hash)s
"""
TOUCH_SQL: LiteralString = "UPDATE api_token SET last_used_at = %(now)s WHERE id = %(token_id)s"
TOUCH_EVERY = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. `scopes` is the token's scopes narrowed to what the role allows."""

    user_id: int
    role: UserRole
    via: str  # "session" or "token"
    scopes: frozenset[TokenScope]
    session_record: UserSession | None = field(default=None, compare=False)
    db: Session | None = field(default=None, compare=False, repr=False)

    @property
    def caller(self) -> CallerRef:
        return CallerRef(id=self.user_id, role=self.role)

    @cached_property
    def user(self) -> User:
        """The user's ORM row, loaded on first use: the annotator's API calls need only the id and
        the role, which the token lookup already returned."""
        if self.session_record is not None:
            return self.session_record.user
        user = None if self.db is None else self.db.get(User, self.user_id)
        if user is None:  # deleted since the token lookup, a moment ago
            raise NotAuthenticated("the API token is invalid, expired or revoked", code="bad_token")
        return user


def principal_from_token(db: Session, raw_token: str) -> Principal | None:
    """The token's principal, or None when it is unknown, revoked, expired or its owner disabled."""
    conn = raw.driver(db)
    row = raw.fetch_one(conn, TOKEN_SQL, {"token_hash": sha256_hex(raw_token)})
    if row is None:
        return None
    token_id, token_scopes, expires_at, revoked_at, last_used_at, user_id, role, is_active = row
    now = utcnow()
    if revoked_at is not None or not is_active or (expires_at is not None and expires_at <= now):
        return None
    if last_used_at is None or now - last_used_at > TOUCH_EVERY:
        conn.execute(TOUCH_SQL, {"now": now, "token_id": token_id}, prepare=True)
        db.commit()
    user_role = UserRole(role)
    scopes = _scopes(token_scopes) & ROLE_SCOPES[user_role]
    return Principal(user_id=user_id, role=user_role, via="token", scopes=scopes, db=db)


def _scopes(values: list[Any]) -> frozenset[TokenScope]:
    return frozenset(TokenScope(s) for s in values if s in TokenScope.__members__)


def principal_from_session(record: UserSession) -> Principal:
    user = record.user
    return Principal(
        user_id=user.id, role=user.role, via="session", scopes=ROLE_SCOPES[user.role], session_record=record
    )


@dataclass(frozen=True)
class Policy:
    """Who may call a route. `public` routes need no login; others need one of `roles`, and
    token callers also need `scope`."""

    public: bool = False
    roles: frozenset[UserRole] = frozenset()
    scope: TokenScope | None = None


def authorize(principal: Principal | None, policy: Policy) -> Principal:
    """The principal if the policy lets it in; otherwise the error the caller gets."""
    if principal is None:
        raise NotAuthenticated("log in first", code="not_authenticated")
    if principal.role not in policy.roles:
        raise Forbidden("your role may not do this", code="forbidden")
    if principal.via == "token" and policy.scope is not None and policy.scope not in principal.scopes:
        raise Forbidden(f"this API token lacks the '{policy.scope}' scope", code="missing_scope")
    return principal
