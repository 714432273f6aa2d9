"""Browser sessions: login with rate limits, server-side sessions with idle and absolute expiry."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.models import AuditEvent, LoginAttempt, User, UserSession
from backend.domain.errors import NotAuthenticated, TooManyRequests
from backend.services.passwords import burn_equal_time, hash_password, needs_rehash, verify_password


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class NewSession:
    cookie_value: str  # the only copy of the secret; the database keeps its hash
    record: UserSession


def _recent_failures(
    session: Session, *, column: InstrumentedAttribute[str], value: str, since: dt.datetime
) -> int:
    query = (
        select(func.count())
        .select_from(LoginAttempt)
        .where(column == value, LoginAttempt.succeeded.is_(False), LoginAttempt.created_at >= since)
    )
    return int(session.scalar(query) or 0)


def check_login_rate(*, session: Session, settings: Settings, email: str, ip: str) -> None:
    """Per-account and per-IP windows. A soft lock: it lifts when the window slides past."""
    since = utcnow() - dt.timedelta(seconds=settings.login_window_seconds)
    for column, value in ((LoginAttempt.email, email), (LoginAttempt.ip, ip)):
        if _recent_failures(session, column=column, value=value, since=since) >= settings.login_max_attempts:
            raise TooManyRequests(
                "too many failed logins; wait a few minutes and try again",
                retry_after_s=settings.login_window_seconds,
            )


def authenticate(*, session: Session, settings: Settings, email: str, password: str, ip: str) -> User:
    email = email.strip().lower()
    check_login_rate(session=session, settings=settings, email=email, ip=ip)
    user = session.scalar(select(User).where(User.email == email))
    ok = False
    if user is None:
        burn_equal_time(password)
    else:
        ok = verify_password(user.password_hash, password) and user.is_active
    session.add(LoginAttempt(email=email, ip=ip, succeeded=ok))
    if not ok or user is None:
        session.commit()
        raise NotAuthenticated("wrong e-mail or password", code="bad_credentials")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    session.add(AuditEvent(actor_id=user.id, action="user.login", object_type="user", object_id=user.id))
    session.commit()
    return user


def start_session(*, session: Session, settings: Settings, user: User, user_agent: str | None) -> NewSession:
    """A fresh session id on every login (no fixation)."""
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    record = UserSession(
        user_id=user.id,
        session_hash=sha256_hex(raw),
        csrf_token=secrets.token_urlsafe(32),
        last_seen_at=now,
        expires_at=now + dt.timedelta(hours=settings.session_absolute_hours),
        user_agent=(user_agent or "")[:400],
    )
    session.add(record)
    session.commit()
    return NewSession(cookie_value=raw, record=record)


def resolve_session(*, session: Session, settings: Settings, cookie_value: str) -> UserSession | None:
    """The live session behind a cookie, or None. Touches last_seen_at at most once a minute."""
    record = session.scalar(select(UserSession).where(UserSession.session_hash == sha256_hex(cookie_value)))
    if record is None or record.revoked_at is not None:
        return None
    now = utcnow()
    idle_limit = record.last_seen_at + dt.timedelta(minutes=settings.session_idle_minutes)
    if now >= record.expires_at or now >= idle_limit or not record.user.is_active:
        return None
    if (now - record.last_seen_at).total_seconds() > 60:
        session.execute(update(UserSession).where(UserSession.id == record.id).values(last_seen_at=now))
        session.commit()
    return record


def end_session(*, session: Session, record: UserSession) -> None:
    record.revoked_at = utcnow()
    session.commit()
