"""Admin pages of the model registry: the list (filter by kind, project or training snapshot) and
one model with its lineage, its files and a download link."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from backend.db.models import ModelArtifact
from backend.domain.enums import ArtifactKind, UserRole
from backend.edge.deps import DbDep, Principal, require
from backend.services.models import get_model, list_models, model_lineage, models_trained_on_snapshot
from backend.services.project_lookup import get_project, get_project_names
from backend.web.pages import render

router = APIRouter(include_in_schema=False)
Admin = Annotated[Principal, Depends(require(UserRole.admin))]


def _int(raw: str) -> int | None:
    return int(raw) if raw.isdigit() else None


@router.get("/admin/models", response_class=HTMLResponse)
def models_list(
    request: Request, db: DbDep, principal: Admin, kind: str = "", project_id: str = "", snapshot_id: str = ""
) -> HTMLResponse:
    chosen = ArtifactKind(kind) if kind in ArtifactKind.__members__ else None
    snapshot = _int(snapshot_id)
    models: list[ModelArtifact]
    if snapshot is not None:
        models = models_trained_on_snapshot(session=db, snapshot_id=snapshot)
    else:
        models = list_models(session=db, kind=chosen, project_id=_int(project_id))
    projects = get_project_names(session=db)
    context = {
        "models": models,
        "kinds": list(ArtifactKind),
        "kind": chosen,
        "snapshot_id": snapshot,
        "project_names": projects,
    }
    return render(request, "models/list.html", principal, context)


@router.get("/admin/models/{model_id}", response_class=HTMLResponse)
def model_page(model_id: int, request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    model = get_model(session=db, model_id=model_id)
    project = get_project(session=db, project_id=model.project_id) if model.project_id else None
    context = {"model": model, "project": project, "lineage": model_lineage(session=db, model=model)}
    return render(request, "models/detail.html", principal, context)
