"""Imports (admins; the upload's size limit is enforced by backend.api.limits while it streams)
and dataset snapshots (admins create; admins and reviewers read and download)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from backend.api.schemas.common import ERROR_RESPONSES, ErrorRead
from backend.api.schemas.data import ImportRead, ImportRejected, SnapshotCreate, SnapshotRead
from backend.db.models import DatasetSnapshot, ImportBatch
from backend.domain.enums import ImportKind, ImportStatus, TokenScope, UserRole
from backend.domain.errors import NotFound
from backend.edge.deps import DbDep, Principal, SettingsDep, require
from backend.services.access import can_see_project, visible_project
from backend.services.artifact_lookup import get_snapshot
from backend.services.imports import ImportOptions, run_import
from backend.services.imports.batches import get_import, list_imports
from backend.services.snapshots import FILES, create_snapshot, list_snapshots, open_snapshot_file

router = APIRouter(tags=["data"], responses=ERROR_RESPONSES)
Admin = Annotated[Principal, Depends(require(UserRole.admin, scope=TokenScope.admin))]
Reader = Annotated[Principal, Depends(require(UserRole.reviewer, UserRole.admin, scope=TokenScope.read))]


def import_read(batch: ImportBatch) -> ImportRead:
    return ImportRead.model_validate(batch)


@router.post(
    "/projects/{project_id}/imports",
    response_model=ImportRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        413: {"model": ErrorRead, "description": "the file is larger than IMPORT_MAX_BYTES"},
        422: {
            "model": ImportRejected,
            "description": "rows were rejected; nothing was written (report inside)",
        },
    },
    summary="Import prompts, responses, PKU-SafeRLHF or HH-RLHF (JSONL, CSV, or gzip)",
)
async def post_import(
    project_id: int,
    db: DbDep,
    settings: SettingsDep,
    principal: Admin,
    file: Annotated[UploadFile, File(description="the data file (.jsonl, .csv, optionally .gz)")],
    kind: Annotated[ImportKind, Form()],
    file_format: Annotated[str, Form(alias="format", max_length=10)] = "auto",
    hh_axis: Annotated[str | None, Form(max_length=20, description="helpfulness or harmlessness")] = None,
    labels: Annotated[str, Form(max_length=10, description="ignore, or gold")] = "ignore",
    on_error: Annotated[str, Form(max_length=20, description="reject_file or skip_rows")] = "reject_file",
    overlap: Annotated[int | None, Form(ge=1, le=1000)] = None,
    priority: Annotated[float, Form()] = 0.0,
    round_id: Annotated[int | None, Form()] = None,
) -> JSONResponse:
    project = visible_project(db, user=principal.user, project_id=project_id)
    options = ImportOptions(
        kind=kind,
        file_format=file_format,
        hh_axis=hh_axis or None,
        labels=labels,
        on_error=on_error,
        overlap=overlap,
        priority=priority,
        round_id=round_id,
    )
    batch = await run_in_threadpool(  # parsing a large file must not block the event loop
        lambda: run_import(
            session=db,
            actor=principal.user,
            project=project,
            options=options,
            upload=file.file,
            filename=file.filename or "upload",
            max_bytes=settings.import_max_bytes,
        )
    )
    read = import_read(batch).model_dump(mode="json")
    if batch.status is ImportStatus.rejected:
        detail = f"{batch.rejected_rows} of {batch.total_rows} rows were rejected; nothing was imported"
        return JSONResponse({"detail": detail, "code": "import_rejected", "import": read}, status_code=422)
    return JSONResponse(read, status_code=status.HTTP_201_CREATED)


@router.get("/projects/{project_id}/imports", response_model=list[ImportRead], summary="Imports of a project")
def read_imports(project_id: int, db: DbDep, principal: Admin) -> list[ImportRead]:
    project = visible_project(db, user=principal.user, project_id=project_id)
    return [import_read(b) for b in list_imports(session=db, project_id=project.id)]


@router.get("/imports/{import_id}", response_model=ImportRead, summary="One import and its report")
def read_import(import_id: int, db: DbDep, principal: Admin) -> ImportRead:
    batch = get_import(session=db, import_id=import_id)
    if not can_see_project(db, user=principal.user, project_id=batch.project_id):
        raise NotFound(f"import {import_id} not found")
    return import_read(batch)


def snapshot_read(snapshot: DatasetSnapshot) -> SnapshotRead:
    return SnapshotRead.model_validate(snapshot).model_copy(update={"files": list(FILES)})


@router.post(
    "/projects/{project_id}/snapshots",
    response_model=SnapshotRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": SnapshotRead, "description": "nothing changed: the existing snapshot"}},
    summary="Export an immutable, content-hashed snapshot (PKU-SafeRLHF JSONL + Parquet, raw votes)",
)
def post_snapshot(
    project_id: int, db: DbDep, settings: SettingsDep, principal: Admin, body: SnapshotCreate | None = None
) -> JSONResponse:
    project = visible_project(db, user=principal.user, project_id=project_id)
    result = create_snapshot(
        session=db,
        actor=principal.user,
        project=project,
        artifacts_dir=settings.artifacts_dir,
        round_id=body.round_id if body else None,
        complete_only=body.complete_only if body else False,
    )
    code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
    return JSONResponse(snapshot_read(result.snapshot).model_dump(mode="json"), status_code=code)


@router.get("/projects/{project_id}/snapshots", response_model=list[SnapshotRead], summary="Snapshots")
def read_snapshots(project_id: int, db: DbDep, principal: Reader) -> list[SnapshotRead]:
    project = visible_project(db, user=principal.user, project_id=project_id)
    return [snapshot_read(s) for s in list_snapshots(db, project=project)]


def visible_snapshot(db: DbDep, principal: Principal, snapshot_id: int) -> DatasetSnapshot:
    snapshot = get_snapshot(session=db, snapshot_id=snapshot_id)
    if not can_see_project(db, user=principal.user, project_id=snapshot.project_id):
        raise NotFound(f"snapshot {snapshot_id} not found")
    return snapshot


@router.get("/snapshots/{snapshot_id}", response_model=SnapshotRead, summary="One snapshot")
def read_snapshot(snapshot_id: int, db: DbDep, principal: Reader) -> SnapshotRead:
    return snapshot_read(visible_snapshot(db, principal, snapshot_id))


@router.get(
    "/snapshots/{snapshot_id}/files/{name}",
    response_class=Response,
    responses={
        200: {"description": "the file, as an attachment", "content": {"application/octet-stream": {}}}
    },
    summary="Download a snapshot file by name (data.jsonl, data.parquet, votes.jsonl, ...)",
)
def download_snapshot_file(
    snapshot_id: int, name: str, request: Request, db: DbDep, settings: SettingsDep, principal: Reader
) -> StreamingResponse:
    snapshot = visible_snapshot(db, principal, snapshot_id)
    handle, media, size = open_snapshot_file(settings.artifacts_dir, snapshot, name)

    def chunks() -> object:
        with handle:
            while chunk := handle.read(1 << 16):
                yield chunk

    filename = f"snapshot-{snapshot.id}-{snapshot.content_sha256[:12]}-{name}"
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(size),
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(chunks(), media_type=media, headers=headers)  # type: ignore[arg-type]
