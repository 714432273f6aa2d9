"""The model registry from the shell: `register-model` brings in a local Hugging Face directory
(such as the SFT model) with the same checks as the REST upload."""

from __future__ import annotations

from pathlib import Path

import click

from backend.cli.base import fail, main
from backend.config import get_settings
from backend.domain.enums import ArtifactKind
from backend.domain.errors import DomainError


@main.command("register-model", help="Register a local Hugging Face model directory (safetensors only).")
@click.option("--kind", required=True, type=click.Choice([k.value for k in ArtifactKind]))
@click.option(
    "--path", "path", required=True, type=click.Path(exists=True, file_okay=False), help="model directory"
)
@click.option("--name", default=None, help="display name (default: the directory's name)")
@click.option("--project", default=None, help="project id or exact name the model belongs to")
@click.option("--round", "round_id", default=None, type=int, help="round id")
@click.option("--snapshot", "snapshot_id", default=None, type=int, help="snapshot it was trained on")
@click.option("--parent", "parent_id", default=None, type=int, help="id of the model it was trained from")
def register_model_cmd(
    kind: str,
    path: str,
    name: str | None,
    project: str | None,
    round_id: int | None,
    snapshot_id: int | None,
    parent_id: int | None,
) -> None:
    from sqlalchemy import select

    from backend.db.models import Project
    from backend.db.session import session_scope
    from backend.services.models import get_model, register_model_dir

    source = Path(path).resolve()
    try:
        with session_scope() as session:
            project_id = None
            if project is not None:
                by = Project.id == int(project) if project.isdigit() else Project.name == project
                project_id = session.scalar(select(Project.id).where(by))
                if project_id is None:
                    fail(f"no project {project!r} (give its id or exact name)")
            if parent_id is not None:
                get_model(session=session, model_id=parent_id)
            model = register_model_dir(
                session=session,
                settings=get_settings(),
                kind=ArtifactKind(kind),
                source_dir=source,
                name=name or source.name,
                project_id=project_id,
                round_id=round_id,
                snapshot_id=snapshot_id,
                parent_id=parent_id,
            )
            session.commit()
            click.echo(
                f"registered {model.kind.value} model {model.name!r} (id {model.id}): "
                f"{len(model.files)} files, {model.size_bytes} bytes, sha256 {model.sha256}"
            )
    except DomainError as exc:
        fail(exc.detail)
