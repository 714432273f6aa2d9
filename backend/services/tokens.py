"""API tokens (docs/design/reliability.md C7): random, shown once, stored as SHA-256 with a non-secret prefix,
scoped to at most what the owner's role allows, revocable, optionally expiring."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.db.models import ApiToken, AuditEvent, User
from backend.domain.enums import TokenScope, UserRole
from backend.domain.errors import InvalidInput, NotFound
from backend.services.sessions import sha256_hex

TOKEN_PREFIX = "srlhf_"
MAX_TOKENS_PER_USER = 50


@dataclass(frozen=True)
class NewToken:
    record: ApiToken
    secret: str  # the only copy; never stored


def _check_request(
    session: Session,
    *,
    owner: User,
    name: str,
    scopes: list[TokenScope],
    allowed: frozenset[TokenScope],
    expires_in_days: int | None,
) -> None:
    if not 1 <= len(name) <= 200:
        raise InvalidInput("give the token a name of 1-200 characters", code="invalid_name")
    wanted = set(scopes)
    if not wanted:
        raise InvalidInput("pick at least one scope", code="invalid_scope")
    beyond = sorted(s.value for s in wanted - allowed)
    if beyond:
        role = owner.role.value
        article = "an" if role[0] in "aeiou" else "a"  # "an annotator", "an admin", "a reviewer"
        raise InvalidInput(
            f"{article} {role} cannot hold tokens with scope {', '.join(beyond)}", code="invalid_scope"
        )
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise InvalidInput("expiry must be between 1 and 3650 days", code="invalid_expiry")
    live = session.scalars(
        select(ApiToken.id).where(ApiToken.user_id == owner.id, ApiToken.revoked_at.is_(None))
    )
    if len(list(live)) >= MAX_TOKENS_PER_USER:
        raise InvalidInput(
            f"at most {MAX_TOKENS_PER_USER} live tokens per user; revoke one", code="too_many_tokens"
        )


def create_token(
    *,
    session: Session,
    actor: User,
    owner: User,
    name: str,
    scopes: list[TokenScope],
    allowed: frozenset[TokenScope],
    expires_in_days: int | None = None,
) -> NewToken:
    name = name.strip()
    _check_request(
        session, owner=owner, name=name, scopes=scopes, allowed=allowed, expires_in_days=expires_in_days
    )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    wanted = set(scopes)
    expires = utcnow() + dt.timedelta(days=expires_in_days) if expires_in_days else None
    record = ApiToken(
        user_id=owner.id,
        name=name,
        prefix=secret[:12],
        token_hash=sha256_hex(secret),
        scopes=sorted(s.value for s in wanted),
        expires_at=expires,
    )
    session.add(record)
    session.flush()
    session.add(
        AuditEvent(
            actor_id=actor.id,
            action="token.create",
            object_type="api_token",
            object_id=record.id,
            detail={"owner_id": owner.id, "scopes": record.scopes},
        )
    )
    session.commit()
    return NewToken(record, secret)


def list_tokens(*, session: Session, owner: User) -> list[ApiToken]:
    return list(
        session.scalars(select(ApiToken).where(ApiToken.user_id == owner.id).order_by(ApiToken.id.desc()))
    )


def revoke_token(*, session: Session, actor: User, token_id: int) -> ApiToken:
    """Owners revoke their own tokens; admins any. Others get 'not found'."""
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.id and actor.role is not UserRole.admin):
        raise NotFound(f"token {token_id} not found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(
            AuditEvent(actor_id=actor.id, action="token.revoke", object_type="api_token", object_id=token.id)
        )
        session.commit()
    return token
