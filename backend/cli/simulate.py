"""`saferlhf simulate ...`: start `python -m simulate` (bot annotators) against this platform.

The bots are REST clients (package ``simulate``); the backend never imports them (nor the toy
world's judges they use), so this command runs them as a child process. When no admin token is
given (``--token`` or ``SAFERLHF_TOKEN``), it issues a one-day admin token for the operator's
admin account (``--as`` e-mail, default: the first active admin), and revokes it afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

from backend.cli.base import fail, main
from backend.config import get_settings


def _admin_token(email: str | None) -> tuple[str, int]:
    from sqlalchemy import select

    from backend.db.models import User
    from backend.db.session import session_scope
    from backend.domain.enums import TokenScope, UserRole
    from backend.services.tokens import create_token

    with session_scope() as session:
        query = select(User).where(User.role == UserRole.admin, User.is_active.is_(True))
        if email:
            query = query.where(User.email == email.strip().lower())
        admin = session.scalars(query.order_by(User.id)).first()
        if admin is None:
            fail(f"no active admin {email}" if email else "no active admin; create one with create-user")
            raise AssertionError("unreachable")
        new = create_token(
            session=session,
            actor=admin,
            owner=admin,
            name="saferlhf simulate",
            scopes=[TokenScope.admin, TokenScope.annotate, TokenScope.read],
            allowed=frozenset(TokenScope),
            expires_in_days=1,
        )
        return new.secret, int(new.record.id)


def _revoke(token_id: int) -> None:
    from backend.db.models import ApiToken
    from backend.db.session import session_scope
    from backend.services.tokens import revoke_token

    with session_scope() as session:
        record = session.get(ApiToken, token_id)
        if record is not None:
            revoke_token(session=session, actor=record.user, token_id=token_id)


@main.command(
    "simulate",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
    help="Run K bot annotators on a project through the REST API (python -m simulate --help).",
)
@click.option("--as", "admin_email", default=None, help="admin whose token the bots are set up with")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def simulate(admin_email: str | None, args: tuple[str, ...]) -> None:
    env = dict(os.environ)
    env.setdefault("SAFERLHF_URL", get_settings().base_url)
    wants_help = "--help" in args or "-h" in args
    given = "SAFERLHF_TOKEN" in env or any(a == "--token" or a.startswith("--token=") for a in args)
    token_id = None
    if not (given or wants_help):
        env["SAFERLHF_TOKEN"], token_id = _admin_token(admin_email)
    try:
        code = subprocess.call([sys.executable, "-m", "simulate", *args], env=env)
    finally:
        if token_id is not None:
            _revoke(token_id)
    sys.exit(code)
