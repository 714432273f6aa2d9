"""Admin pages for users: list, create (with a generated password shown once), edit."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from backend.domain.enums import UserRole
from backend.domain.errors import Conflict, InvalidInput
from backend.edge.deps import DbDep, Principal, require
from backend.services.accounts import UserChanges, list_users, update_user
from backend.services.users import create_user
from backend.web.pages import render, see_other

router = APIRouter(include_in_schema=False)
Admin = Annotated[Principal, Depends(require(UserRole.admin))]


def _page(
    request: Request, db: DbDep, principal: Principal, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    context: dict[str, Any] = {
        "users": list_users(session=db),
        "roles": [r.value for r in UserRole],
        "form": {},
    }
    context.update(errors=[], created=None, password=None)
    context.update(extra)
    return render(request, "admin/users.html", principal, context, status=status)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    return _page(request, db, principal)


@router.post("/admin/users", response_class=HTMLResponse)
async def create_user_page(request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    form = await request.form()
    email = str(form.get("email", "")).strip()
    role = str(form.get("role", "annotator"))
    typed = str(form.get("password", ""))
    password = typed or secrets.token_urlsafe(12)

    def attempt() -> HTMLResponse:
        try:
            if role not in {r.value for r in UserRole}:
                raise InvalidInput("Choose a role.")
            user = create_user(
                session=db,
                email=email,
                password=password,
                role=UserRole(role),
                display_name=str(form.get("display_name", "")).strip() or None,
                actor_id=principal.user.id,
            )
        except (InvalidInput, Conflict) as exc:
            values = {"email": email, "role": role, "display_name": str(form.get("display_name", ""))}
            return _page(request, db, principal, status=422, form=values, errors=[exc.detail])
        return _page(request, db, principal, status=201, created=user, password=None if typed else password)

    return await run_in_threadpool(attempt)


@router.post("/admin/users/{user_id}", response_class=HTMLResponse)
async def update_user_page(user_id: int, request: Request, db: DbDep, principal: Admin) -> Response:
    form = await request.form()
    role = str(form.get("role", ""))
    password = str(form.get("password", ""))

    def attempt() -> Response:
        try:
            if role and role not in {r.value for r in UserRole}:
                raise InvalidInput("Choose a role.")
            changes = UserChanges(
                display_name=str(form.get("display_name", "")).strip() or None,
                role=UserRole(role) if role else None,
                is_active=form.get("is_active") == "on",
                password=password or None,
            )
            update_user(session=db, actor=principal.user, user_id=user_id, changes=changes)
        except (InvalidInput, Conflict) as exc:
            return _page(request, db, principal, status=422, errors=[exc.detail])
        return see_other("/admin/users", "user_saved")

    return await run_in_threadpool(attempt)
