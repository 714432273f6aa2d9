"""`saferlhf create-token`: an API token for an existing user, printed once (for scripts such as
the demo's round driver, which drives the platform over REST as that user)."""

from __future__ import annotations

import click

from backend.cli.base import fail, main
from backend.domain.enums import TokenScope
from backend.domain.errors import DomainError


@main.command("create-token", help="Create an API token for a user and print it once.")
@click.option("--email", required=True)
@click.option("--name", default="cli", show_default=True, help="a label to recognise the token by")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice([s.value for s in TokenScope]),
    help="repeat for several (default: every scope the user's role allows)",
)
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None)
def create_token_cmd(email: str, name: str, scopes: tuple[str, ...], expires_in_days: int | None) -> None:
    from backend.db.session import session_scope
    from backend.edge.deps import ROLE_SCOPES
    from backend.services.tokens import create_token
    from backend.services.users import find_user_by_email

    with session_scope() as session:
        user = find_user_by_email(session=session, email=email)
        if user is None or not user.is_active:
            fail(f"no active user {email}")
            raise AssertionError("unreachable")
        allowed = ROLE_SCOPES[user.role]
        wanted = [TokenScope(s) for s in scopes] if scopes else sorted(allowed)
        try:
            new = create_token(
                session=session,
                actor=user,
                owner=user,
                name=name,
                scopes=list(wanted),
                allowed=allowed,
                expires_in_days=expires_in_days,
            )
        except DomainError as exc:
            fail(str(exc))
            raise AssertionError("unreachable") from exc
        click.echo(new.secret)
