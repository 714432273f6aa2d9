"""Admin pages for projects: list and create, settings, members, imports, snapshots."""

from __future__ import annotations

import json
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from backend.db.models import Project
from backend.domain.enums import ImportKind, UserRole
from backend.domain.errors import Conflict, DomainError, InvalidInput, NotFound, PayloadTooLarge
from backend.edge.deps import DbDep, Principal, SettingsDep, require
from backend.services.access import visible_project
from backend.services.imports import ImportOptions, run_import
from backend.services.imports.batches import get_import, list_imports
from backend.services.imports.kept import KeptUpload, find_kept, keep_upload
from backend.services.project_lookup import list_visible_projects
from backend.services.projects import (
    ProjectChanges,
    add_member,
    create_project,
    list_members,
    project_counts,
    remove_member,
    update_project,
)
from backend.services.snapshots import FILES, create_snapshot, list_snapshots
from backend.services.user_lookup import list_active_users
from backend.web.forms import PageForm, form_file, form_text
from backend.web.pages import render, see_other

router = APIRouter(include_in_schema=False)
Admin = Annotated[Principal, Depends(require(UserRole.admin))]


def _text(form: FormData, name: str) -> str:
    return form_text(form, name).strip()


def parse_project_form(form: FormData) -> ProjectChanges:
    """Numbers arrive as text; a bad one is a clear message, not a 500."""

    def number(name: str, cast: type[int] | type[float]) -> Any:
        raw = _text(form, name)
        if not raw:
            return None
        try:
            return cast(raw)
        except ValueError:
            raise InvalidInput(f"'{name.replace('_', ' ')}' must be a number") from None

    taxonomy = None
    if _text(form, "harm_taxonomy"):
        try:
            taxonomy = json.loads(_text(form, "harm_taxonomy"))
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"the harm taxonomy is not valid JSON ({exc.msg}, line {exc.lineno})"
            ) from None
        if not isinstance(taxonomy, list) or not all(isinstance(c, dict) for c in taxonomy):
            raise InvalidInput("the harm taxonomy must be a JSON list of {key, label, description} objects")
    return ProjectChanges(
        name=_text(form, "name") or None,
        description=form_text(form, "description"),
        guidelines_md=form_text(form, "guidelines_md"),
        harm_taxonomy=taxonomy,
        default_overlap=number("default_overlap", int),
        gold_rate=number("gold_rate", float),
        lease_seconds=number("lease_seconds", int),
    )


@router.get("/admin", response_class=HTMLResponse)
def admin_home(request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    projects = list_visible_projects(session=db, user=principal.user)
    rows = [(p, project_counts(session=db, project=p)) for p in projects]
    return render(request, "admin/index.html", principal, {"rows": rows, "form": {}, "errors": []})


@router.post("/admin/projects", response_class=HTMLResponse)
def create_project_page(request: Request, form: PageForm, db: DbDep, principal: Admin) -> Response:
    try:
        project = create_project(session=db, actor=principal.user, changes=parse_project_form(form))
    except (InvalidInput, Conflict) as exc:
        db.rollback()
        projects = list_visible_projects(session=db, user=principal.user)
        rows = [(p, project_counts(session=db, project=p)) for p in projects]
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        return render(
            request,
            "admin/index.html",
            principal,
            {"rows": rows, "form": values, "errors": [exc.detail]},
            status=422,
        )
    return see_other(f"/admin/projects/{project.id}", "project_created")


def project_context(db: DbDep, project: Project) -> dict[str, Any]:
    members = list_members(session=db, project=project)
    member_ids = {m.id for m in members}
    candidates = [u for u in list_active_users(session=db) if u.id not in member_ids]
    imports = list_imports(session=db, project_id=project.id, limit=10)
    return {
        "project": project,
        "counts": project_counts(session=db, project=project),
        "members": members,
        "candidates": candidates,
        "imports": imports,
        "snapshots": list_snapshots(db, project=project)[:10],
        "files": FILES,
        "taxonomy_json": json.dumps(project.harm_taxonomy, indent=2, ensure_ascii=False),
        "kinds": [k.value for k in ImportKind],
        "form": {},
        "errors": [],
        "kept": None,
    }


@router.get("/admin/projects/{project_id}", response_class=HTMLResponse)
def project_page(project_id: int, request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    project = visible_project(db, user=principal.user, project_id=project_id)
    return render(request, "admin/project.html", principal, project_context(db, project))


def _rerender(
    request: Request,
    db: DbDep,
    principal: Principal,
    project: Project,
    form: FormData,
    error: str,
    kept: KeptUpload | None = None,
) -> HTMLResponse:
    db.rollback()
    context = project_context(db, project)
    context.update(form={k: v for k, v in form.items() if isinstance(v, str)}, errors=[error])
    if kept is not None:
        context["kept"] = {"token": kept.token, "filename": kept.filename}
    return render(request, "admin/project.html", principal, context, status=422)


@router.post("/admin/projects/{project_id}/settings", response_class=HTMLResponse)
def project_settings(
    project_id: int, request: Request, form: PageForm, db: DbDep, principal: Admin
) -> Response:
    project = visible_project(db, user=principal.user, project_id=project_id)
    try:
        update_project(session=db, actor=principal.user, project=project, changes=parse_project_form(form))
    except (InvalidInput, Conflict) as exc:
        db.rollback()
        project = visible_project(db, user=principal.user, project_id=project_id)
        return _rerender(request, db, principal, project, form, exc.detail)
    return see_other(f"/admin/projects/{project_id}", "settings_saved")


@router.post("/admin/projects/{project_id}/members")
def add_member_page(
    project_id: int, request: Request, form: PageForm, db: DbDep, principal: Admin
) -> Response:
    project = visible_project(db, user=principal.user, project_id=project_id)
    raw = _text(form, "user_id")
    if not raw.isdigit():
        return _rerender(request, db, principal, project, form, "Pick a user to add.")
    add_member(session=db, actor=principal.user, project=project, user_id=int(raw))
    return see_other(f"/admin/projects/{project_id}", "member_added")


@router.post("/admin/projects/{project_id}/members/{user_id}/remove")
def remove_member_page(project_id: int, user_id: int, db: DbDep, principal: Admin) -> Response:
    project = visible_project(db, user=principal.user, project_id=project_id)
    remove_member(session=db, actor=principal.user, project=project, user_id=user_id)
    return see_other(f"/admin/projects/{project_id}", "member_removed")


def _import_options(form: FormData) -> ImportOptions:
    kind = _text(form, "kind")
    if kind not in {k.value for k in ImportKind}:
        raise InvalidInput("Choose what the file holds.")
    overlap = _text(form, "overlap")
    if overlap and not overlap.isdigit():
        raise InvalidInput("Overlap must be a whole number.")
    return ImportOptions(
        kind=ImportKind(kind),
        file_format=_text(form, "format") or "auto",
        hh_axis=_text(form, "hh_axis") or None,
        labels=_text(form, "labels") or "ignore",
        on_error=_text(form, "on_error") or "reject_file",
        overlap=int(overlap) if overlap else None,
    )


def _chosen_file(
    form: FormData, settings: SettingsDep, principal: Principal, project: Project
) -> tuple[IO[bytes], str, KeptUpload | None] | None:
    """The file to import: a new upload, else the one kept from the last try; None if neither."""
    upload = form_file(form, "file")
    if upload is not None and upload.filename:
        return upload.file, upload.filename, None
    kept = find_kept(
        settings.artifacts_dir,
        _text(form, "kept_upload"),
        user_id=principal.user.id,
        project_id=project.id,
    )
    if kept is None:
        return None
    return kept.open(), kept.filename, kept


@router.post("/admin/projects/{project_id}/imports", response_class=HTMLResponse)
def import_page(
    project_id: int, request: Request, form: PageForm, db: DbDep, settings: SettingsDep, principal: Admin
) -> Response:
    """Imports the file, then redirects (303) to its report, whether rows were rejected or not, so
    reloading the report never uploads the file again. An option error re-renders the form (422)
    with the choices and the uploaded file kept for the next try."""
    project = visible_project(db, user=principal.user, project_id=project_id)
    chosen = _chosen_file(form, settings, principal, project)
    if chosen is None:
        return _rerender(request, db, principal, project, form, "Choose a file to import.")
    stream, filename, kept = chosen
    with stream:
        try:
            batch = run_import(
                session=db,
                actor=principal.user,
                project=project,
                options=_import_options(form),
                upload=stream,
                filename=filename,
                max_bytes=settings.import_max_bytes,
            )
        except DomainError as exc:
            if isinstance(exc, NotFound):
                raise
            if kept is None and not isinstance(exc, PayloadTooLarge):
                kept = keep_upload(
                    settings.artifacts_dir,
                    upload=stream,
                    filename=filename,
                    user_id=principal.user.id,
                    project_id=project.id,
                )
            return _rerender(request, db, principal, project, form, exc.detail, kept)
    if kept is not None:
        kept.discard()
    return see_other(f"/admin/imports/{batch.id}")


@router.get("/admin/imports/{import_id}", response_class=HTMLResponse)
def import_report(import_id: int, request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    batch = get_import(session=db, import_id=import_id)
    project = visible_project(db, user=principal.user, project_id=batch.project_id)
    return render(request, "admin/import.html", principal, {"batch": batch, "project": project})


@router.post("/admin/projects/{project_id}/snapshots")
def snapshot_page(
    project_id: int, form: PageForm, db: DbDep, settings: SettingsDep, principal: Admin
) -> Response:
    project = visible_project(db, user=principal.user, project_id=project_id)
    result = create_snapshot(
        session=db,
        actor=principal.user,
        project=project,
        artifacts_dir=settings.artifacts_dir,
        complete_only=_text(form, "complete_only") == "1",
    )
    notice = "snapshot_created" if result.created else "snapshot_exists"
    return see_other(f"/admin/projects/{project_id}", notice)
