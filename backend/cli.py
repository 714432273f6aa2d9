"""`saferlhf`: the platform's command line (serve, worker, migrate, create-user, check)."""

from __future__ import annotations

import getpass
import os
import secrets
import sys
from pathlib import Path

import click

from backend.config import REPO_ROOT, get_settings
from backend.domain import task_names
from backend.domain.enums import UserRole
from backend.domain.errors import DomainError


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group(help="Safe RLHF platform: decoupled preference annotation and Safe RLHF training rounds.")
def main() -> None:
    pass


@main.command(help="Serve the web app and the REST API with uvicorn.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes")
@click.option("--reload", is_flag=True, help="restart on code changes (development)")
def serve(host: str, port: int, workers: int, reload: bool) -> None:
    import uvicorn

    uvicorn.run(
        "backend.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        proxy_headers=True,
        log_level="info",
    )


@main.command(help="Run a Celery worker. `--queues gpu` gets concurrency 1, the training setting.")
@click.option("--queues", default=f"{task_names.DEFAULT_QUEUE},{task_names.GPU_QUEUE}", show_default=True)
@click.option("--concurrency", default=None, type=int, help="processes (default: 1 for gpu, 2 otherwise)")
@click.option("--beat", is_flag=True, help="also run the periodic scheduler (one per deployment)")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(queues: str, concurrency: int | None, beat: bool, loglevel: str) -> None:
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if concurrency is None:
        # A GPU worker runs one training job at a time; training runs in a subprocess anyway.
        concurrency = 1 if task_names.GPU_QUEUE in names else 2
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-Q",
        ",".join(names),
        "-c",
        str(concurrency),
        "--prefetch-multiplier",
        "1",
        "-O",
        "fair",
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        args += ["--beat", "--schedule", str(Path(get_settings().artifacts_dir) / "celerybeat-schedule")]
        Path(get_settings().artifacts_dir).mkdir(parents=True, exist_ok=True)
    os.execv(sys.executable, args)


@main.command(help="Apply database migrations (alembic upgrade head).")
def migrate() -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    command.upgrade(cfg, "head")
    click.echo("database is at the latest migration")


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


@main.command(help="Check that the database and the broker are reachable.")
def check() -> None:
    from backend.db.session import get_engine
    from backend.services.health import check_broker, check_database

    db = check_database(get_engine())
    broker = check_broker(get_settings())
    click.echo(f"database: {'ok' if db.ok else 'DOWN'} ({db.detail})")
    click.echo(f"broker:   {'ok' if broker.ok else 'DOWN'} ({broker.detail})")
    if not (db.ok and broker.ok):
        sys.exit(1)


@main.command(help="Send a ping task through the broker and wait for a worker to answer.")
@click.option("--timeout", default=20.0, show_default=True)
def ping(timeout: float) -> None:
    from backend.queue import client

    result = client().send_task(task_names.PING, queue=task_names.DEFAULT_QUEUE)
    try:
        answer = result.get(timeout=timeout)
    except Exception as exc:
        fail(
            f"no worker answered within {timeout:.0f}s ({type(exc).__name__}); is `saferlhf worker` running?"
        )
    click.echo(f"pong from {answer['worker_id']}")


if __name__ == "__main__":
    main()
