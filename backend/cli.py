"""`saferlhf`: the platform's command line (serve, worker, migrate, create-user, check)."""

from __future__ import annotations

import getpass
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from backend.config import REPO_ROOT, get_settings
from backend.domain import task_names
from backend.domain.enums import UserRole
from backend.domain.errors import DomainError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from backend.db.models import Project, User


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group(help="Safe RLHF platform: decoupled preference annotation and Safe RLHF training rounds.")
def main() -> None:
    pass


def invalid_settings() -> str | None:
    """Why the environment's settings are invalid (one line per field), or None."""
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        return f"invalid settings: {fields}"
    return None


@main.command(help="Serve the web app and the REST API with uvicorn.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="worker processes; on Linux each accepts on its own SO_REUSEPORT socket, so the kernel "
    "spreads connections evenly",
)
@click.option("--reload", is_flag=True, help="restart on code changes (development; one worker)")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="log every request")
def serve(host: str, port: int, workers: int, reload: bool, log_level: str, access_log: bool) -> None:
    import logging

    import uvicorn

    from backend.serving import PortInUse, ServeOptions, balances_connections, serve_balanced

    if workers > 1 and reload:
        fail("--reload runs one worker; drop --workers or --reload")
    settings_error = invalid_settings()
    if settings_error:
        fail(settings_error)
    if workers > 1 and balances_connections():
        logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(message)s")
        options = ServeOptions(host=host, port=port, log_level=log_level, access_log=access_log)
        try:
            sys.exit(serve_balanced(options, workers))
        except PortInUse as exc:
            fail(str(exc))
    uvicorn.run(
        "backend.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        proxy_headers=True,
        log_level=log_level,
        access_log=access_log,
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


def _project_and_admin(session: Session, project: str, as_email: str | None) -> tuple[Project, User]:
    """The project by id or name, and the admin the CLI acts as (recorded in the audit trail)."""
    from sqlalchemy import select

    from backend.db.models import Project, User

    by = Project.id == int(project) if project.isdigit() else Project.name == project
    found = session.scalar(select(Project).where(by))
    if found is None:
        fail(f"no project {project!r} (give its id or exact name)")
        raise AssertionError
    first_admin = select(User).where(User.role == UserRole.admin, User.is_active.is_(True)).order_by(User.id)
    actor = session.scalar(
        select(User).where(User.email == as_email.strip().lower()) if as_email else first_admin.limit(1)
    )
    if actor is None or actor.role is not UserRole.admin:
        fail("the CLI acts as an admin: create one first, or pass --as an admin's e-mail")
        raise AssertionError
    return found, actor


@main.command("create-project", help="Create a project with the default BeaverTails taxonomy.")
@click.option("--name", required=True)
@click.option("--overlap", default=3, show_default=True, type=int, help="annotations per comparison (k)")
@click.option("--gold-rate", default=0.1, show_default=True, type=float)
@click.option("--guidelines", type=click.Path(exists=True, dir_okay=False), help="a Markdown file")
@click.option("--member", "members", multiple=True, help="e-mail of a user to add (repeatable)")
@click.option("--as", "as_email", default=None, help="admin e-mail recorded as the actor")
def create_project_cmd(
    name: str,
    overlap: int,
    gold_rate: float,
    guidelines: str | None,
    members: tuple[str, ...],
    as_email: str | None,
) -> None:
    from sqlalchemy import select

    from backend.db.models import User
    from backend.db.session import session_scope
    from backend.services.projects import ProjectChanges, add_member, create_project
    from backend.services.users import find_user_by_email

    guide = Path(guidelines).read_text(encoding="utf-8") if guidelines else ""
    try:
        with session_scope() as session:
            admins = select(User).where(User.role == UserRole.admin).order_by(User.id).limit(1)
            actor = (
                find_user_by_email(session=session, email=as_email) if as_email else session.scalar(admins)
            )
            if actor is None:
                fail("create an admin first (saferlhf create-user --role admin ...)")
                return
            changes = ProjectChanges(
                name=name, guidelines_md=guide, default_overlap=overlap, gold_rate=gold_rate
            )
            project = create_project(session=session, actor=actor, changes=changes)
            for email in members:
                member = find_user_by_email(session=session, email=email)
                if member is None:
                    fail(f"no user {email}")
                    return
                add_member(session=session, actor=actor, project=project, user_id=member.id)
            click.echo(f"created project {project.name!r} (id {project.id})")
    except DomainError as exc:
        fail(exc.detail)


@main.command("import", help="Import a data file into a project (same rules as the web and API import).")
@click.option("--project", required=True, help="project id or exact name")
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["prompts", "responses", "pku_saferlhf", "hh_rlhf"]),
    help="what the file holds",
)
@click.option("--file", "path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format", "file_format", default="auto", type=click.Choice(["auto", "jsonl", "csv"]), show_default=True
)
@click.option(
    "--hh-axis",
    type=click.Choice(["helpfulness", "harmlessness"]),
    help="HH-RLHF: which preference the file holds",
)
@click.option("--labels", default="ignore", type=click.Choice(["ignore", "gold"]), show_default=True)
@click.option(
    "--on-error", default="reject_file", type=click.Choice(["reject_file", "skip_rows"]), show_default=True
)
@click.option("--overlap", type=int, default=None, help="annotations per comparison (default: the project's)")
@click.option("--priority", type=float, default=0.0, show_default=True)
@click.option("--as", "as_email", default=None, help="admin e-mail recorded as the actor")
def import_cmd(
    project: str,
    kind: str,
    path: str,
    file_format: str,
    hh_axis: str | None,
    labels: str,
    on_error: str,
    overlap: int | None,
    priority: float,
    as_email: str | None,
) -> None:
    from backend.db.session import session_scope
    from backend.domain.enums import ImportKind
    from backend.services.imports import ImportOptions, run_import

    options = ImportOptions(
        kind=ImportKind(kind),
        file_format=file_format,
        hh_axis=hh_axis,
        labels=labels,
        on_error=on_error,
        overlap=overlap,
        priority=priority,
    )
    size = Path(path).stat().st_size
    settings = get_settings()
    if size > settings.import_max_bytes:
        fail(f"{path} is {size} bytes; the limit is {settings.import_max_bytes} (IMPORT_MAX_BYTES)")
    try:
        with session_scope() as session, open(path, "rb") as handle:
            target, actor = _project_and_admin(session, project, as_email)
            batch = run_import(
                session=session,
                actor=actor,
                project=target,
                options=options,
                upload=handle,
                filename=Path(path).name,
                max_bytes=settings.import_max_bytes,
            )
            report, status, rejected = batch.report, batch.status.value, batch.rejected_rows
            click.echo(
                f"import {batch.id}: {status}; {batch.total_rows} rows, {batch.accepted_rows} accepted, "
                f"{rejected} rejected, {batch.duplicate_rows} duplicates; created {report['created']}"
            )
    except DomainError as exc:
        fail(exc.detail)
    for row in report["rejected"][:50]:
        click.echo(f"  row {row['row']}: {row['reason']}", err=True)
    if rejected > len(report["rejected"][:50]):
        click.echo(f"  ... and {rejected - 50} more (see the import page)", err=True)
    if status == "rejected":
        sys.exit(1)


@main.command("export", help="Export a dataset snapshot of a project (and optionally copy its files).")
@click.option("--project", required=True, help="project id or exact name")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="copy the snapshot files here")
@click.option("--as", "as_email", default=None, help="admin e-mail recorded as the actor")
def export_cmd(project: str, out: str | None, as_email: str | None) -> None:
    import shutil

    from backend.db.session import session_scope
    from backend.services.snapshots import FILES, create_snapshot
    from backend.services.storage import resolve_artifact

    settings = get_settings()
    try:
        with session_scope() as session:
            target, actor = _project_and_admin(session, project, as_email)
            result = create_snapshot(
                session=session,
                actor=actor,
                project=target,
                artifacts_dir=settings.artifacts_dir,
            )
            snap = result.snapshot
            key, sha, rows, votes = snap.storage_key, snap.content_sha256, snap.row_count, snap.vote_count
            click.echo(
                f"snapshot {snap.id} ({'new' if result.created else 'unchanged, existing'}): "
                f"{rows} pairs, {votes} votes, sha256 {sha}"
            )
    except DomainError as exc:
        fail(exc.detail)
    folder = resolve_artifact(Path(settings.artifacts_dir), key)
    click.echo(f"files: {folder}")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copy2(folder / name, Path(out) / name)
        click.echo(f"copied {len(FILES)} files to {out}")


if __name__ == "__main__":
    main()
