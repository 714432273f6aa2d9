"""Accounts: `create-user` and `set-password`."""

from __future__ import annotations

import getpass
import os
import secrets

import click

from backend.cli.base import fail, main
from backend.domain.enums import UserRole
from backend.domain.errors import DomainError


def read_password(email: str, password_env: str | None, generate: bool) -> str:
    """From an environment variable (never a command-line argument: it would show in `ps`),
    generated, or typed at a hidden prompt."""
    if password_env:
        password = os.environ.get(password_env, "")
        if not password:
            fail(f"environment variable {password_env} is empty or unset")
        return password
    if generate:
        return secrets.token_urlsafe(12)
    return getpass.getpass(f"password for {email}: ")


@main.command(
    "create-user", help="Create a user. The password comes from --password-env, a prompt, or is generated."
)
@click.option("--email", required=True)
@click.option(
    "--role",
    type=click.Choice([r.value for r in UserRole]),
    default=UserRole.annotator.value,
    show_default=True,
)
@click.option("--name", "display_name", default=None, help="display name (default: the e-mail's local part)")
@click.option("--password-env", default=None, help="read the password from this environment variable")
@click.option("--generate", is_flag=True, help="generate a password and print it once")
@click.option("--if-missing", is_flag=True, help="succeed quietly when the user already exists")
def create_user_cmd(
    email: str,
    role: str,
    display_name: str | None,
    password_env: str | None,
    generate: bool,
    if_missing: bool,
) -> None:
    from backend.db.session import session_scope
    from backend.services.users import create_user, find_user_by_email

    with session_scope() as session:
        if if_missing and find_user_by_email(session=session, email=email) is not None:
            click.echo(f"user {email} already exists")
            return
    password = read_password(email, password_env, generate)
    try:
        with session_scope() as session:
            user = create_user(
                session=session,
                email=email,
                password=password,
                role=UserRole(role),
                display_name=display_name,
            )
            user_id = user.id
    except DomainError as exc:
        fail(exc.detail)
    click.echo(f"created {role} {email} (id {user_id})")
    if generate:
        click.echo(f"password (shown once): {password}")


@main.command("set-password", help="Set a user's password (from --password-env, a prompt, or generated).")
@click.option("--email", required=True)
@click.option("--password-env", default=None, help="read the password from this environment variable")
@click.option("--generate", is_flag=True, help="generate a password and print it once")
def set_password_cmd(email: str, password_env: str | None, generate: bool) -> None:
    from backend.db.session import session_scope
    from backend.services.passwords import hash_password
    from backend.services.users import find_user_by_email

    password = read_password(email, password_env, generate)
    try:
        with session_scope() as session:
            user = find_user_by_email(session=session, email=email)
            if user is None:
                fail(f"no user with e-mail {email}")
                return
            user.password_hash = hash_password(password)
    except DomainError as exc:
        fail(exc.detail)
    click.echo(f"password of {email} changed")
    if generate:
        click.echo(f"password (shown once): {password}")
