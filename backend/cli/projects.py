"""Project data: `create-project`, `import` and `export`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from backend.cli.base import fail, main
from backend.config import get_settings
from backend.domain.enums import UserRole
from backend.domain.errors import DomainError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from backend.db.models import Project, User


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
                f"import {batch.id}: {status}; {batch.total_rows} rows read: "
                f"{batch.accepted_rows - batch.duplicate_rows} imported, "
                f"{batch.duplicate_rows} duplicates skipped, {rejected} rejected; created {report['created']}"
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
