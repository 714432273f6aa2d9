"""The model registry over REST (admins): list, read with lineage, files, one-archive download,
and registration from an uploaded archive. A remote client never names a server path: it uploads
the directory as a tar, tar.gz or zip, which is unpacked with every member checked."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from backend.api.schemas.common import ERROR_RESPONSES, ErrorRead
from backend.api.schemas.models import Lineage, ModelDetail, ModelFile, ModelRead
from backend.config import Settings
from backend.db.models import ModelArtifact
from backend.domain.enums import ArtifactKind, TokenScope, UserRole
from backend.edge.deps import DbDep, Principal, SettingsDep, require
from backend.services.access import visible_project
from backend.services.artifact_lookup import get_round, get_snapshot
from backend.services.model_archives import archive_size, extract_model_archive, write_model_archive
from backend.services.models import (
    get_model,
    list_models,
    model_lineage,
    models_trained_on_snapshot,
    register_model_dir,
    resolve_model_dir,
)

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)
Admin = Annotated[Principal, Depends(require(UserRole.admin, scope=TokenScope.admin))]
AdminReader = Annotated[Principal, Depends(require(UserRole.admin, scope=TokenScope.read))]


def model_detail(db: Session, model: ModelArtifact) -> ModelDetail:
    base = ModelRead.model_validate(model).model_dump()
    lineage = Lineage.model_validate(model_lineage(session=db, model=model))
    files = [ModelFile.model_validate(f) for f in model.files]
    return ModelDetail(**base, lineage=lineage, files=files)


@router.get("/models", response_model=list[ModelRead], summary="Registered models, newest first")
def read_models(
    db: DbDep,
    principal: AdminReader,
    kind: ArtifactKind | None = None,
    project_id: int | None = None,
    round_id: int | None = None,
    training_job_id: Annotated[
        int | None, Query(description="only the models this training job produced (the job page asks)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[ModelRead]:
    rows = list_models(
        session=db,
        kind=kind,
        project_id=project_id,
        round_id=round_id,
        training_job_id=training_job_id,
        limit=limit,
    )
    return [ModelRead.model_validate(m) for m in rows]


def _check_links(db: Session, principal: Principal, round_id: int | None, parent_id: int | None) -> None:
    """Ids that would otherwise surface as a foreign-key error are a clear 404 instead."""
    if round_id is not None:
        get_round(session=db, round_id=round_id)
    if parent_id is not None:
        get_model(session=db, model_id=parent_id)


def _register_upload(
    db: Session, settings: Settings, upload: UploadFile, kind: ArtifactKind, name: str, links: dict[str, Any]
) -> ModelArtifact:
    root = Path(settings.artifacts_dir) / "models"
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".upload-", dir=root))
    try:
        archive = work / "upload"
        with open(archive, "wb") as handle:
            shutil.copyfileobj(upload.file, handle, 1 << 20)
        model_dir = extract_model_archive(archive, work / "x", limit=settings.model_upload_max_bytes)
        return register_model_dir(
            session=db, settings=settings, kind=kind, source_dir=model_dir, name=name, **links
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


@router.post(
    "/models",
    response_model=ModelDetail,
    status_code=status.HTTP_201_CREATED,
    responses={413: {"model": ErrorRead, "description": "larger than MODEL_UPLOAD_MAX_BYTES"}},
    summary="Register a Hugging Face model directory uploaded as a tar, tar.gz or zip (safetensors only)",
)
def post_model(
    db: DbDep,
    settings: SettingsDep,
    principal: Admin,
    file: Annotated[UploadFile, File(description="the model directory as .tar, .tar.gz or .zip")],
    kind: Annotated[ArtifactKind, Form()],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    project_id: Annotated[int | None, Form()] = None,
    round_id: Annotated[int | None, Form()] = None,
    snapshot_id: Annotated[int | None, Form()] = None,
    parent_id: Annotated[int | None, Form()] = None,
) -> ModelDetail:
    if project_id is not None:
        visible_project(db, user=principal.user, project_id=project_id)
    _check_links(db, principal, round_id, parent_id)
    model = _register_upload(
        db,
        settings,
        file,
        kind,
        name,
        {"project_id": project_id, "round_id": round_id, "snapshot_id": snapshot_id, "parent_id": parent_id},
    )
    db.commit()
    return model_detail(db, model)


@router.get("/models/{model_id}", response_model=ModelDetail, summary="One model with its lineage")
def read_model(model_id: int, db: DbDep, principal: AdminReader) -> ModelDetail:
    return model_detail(db, get_model(session=db, model_id=model_id))


@router.get("/models/{model_id}/files", response_model=list[ModelFile], summary="A model's files")
def read_model_files(model_id: int, db: DbDep, principal: AdminReader) -> list[ModelFile]:
    return [ModelFile.model_validate(f) for f in get_model(session=db, model_id=model_id).files]


@router.get(
    "/models/{model_id}/archive",
    response_class=Response,
    responses={200: {"description": "the model directory as one tar", "content": {"application/x-tar": {}}}},
    summary="Download a model directory as one tar (verify each file against /files)",
)
def download_model_archive(
    model_id: int, db: DbDep, settings: SettingsDep, principal: AdminReader
) -> StreamingResponse:
    model = get_model(session=db, model_id=model_id)
    model_dir = resolve_model_dir(session=db, settings=settings, model_id=model.id)
    headers = {
        "Content-Disposition": f'attachment; filename="model-{model.id}-{model.sha256[:12]}.tar"',
        "Content-Length": str(archive_size(model)),
        "X-Content-Type-Options": "nosniff",
    }
    stream = write_model_archive(model, model_dir)
    return StreamingResponse(stream, media_type="application/x-tar", headers=headers)


@router.get(
    "/snapshots/{snapshot_id}/models",
    response_model=list[ModelRead],
    summary="The models trained on a snapshot",
)
def read_snapshot_models(snapshot_id: int, db: DbDep, principal: AdminReader) -> list[ModelRead]:
    get_snapshot(session=db, snapshot_id=snapshot_id)
    rows = models_trained_on_snapshot(session=db, snapshot_id=snapshot_id)
    return [ModelRead.model_validate(m) for m in rows]
