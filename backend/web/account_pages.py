"""The user's own API tokens: list, create (the secret is shown once), revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from backend.domain.enums import TokenScope
from backend.domain.errors import InvalidInput
from backend.edge.deps import ALL_ROLES, ROLE_SCOPES, DbDep, Principal, require
from backend.services.tokens import NewToken, create_token, list_tokens, revoke_token
from backend.web.pages import render, see_other

router = APIRouter(include_in_schema=False)
Anyone = Annotated[Principal, Depends(require(*ALL_ROLES))]


def _page(
    request: Request, db: DbDep, principal: Principal, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    context: dict[str, Any] = {
        "tokens": list_tokens(session=db, owner=principal.user),
        "scopes": sorted(s.value for s in ROLE_SCOPES[principal.role]),
        "new": None,
        "errors": [],
        "form": {},
    }
    context.update(extra)
    return render(request, "account/tokens.html", principal, context, status=status)


@router.get("/account/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, db: DbDep, principal: Anyone) -> HTMLResponse:
    return _page(request, db, principal)


@router.post("/account/tokens", response_class=HTMLResponse)
async def create_token_page(request: Request, db: DbDep, principal: Anyone) -> HTMLResponse:
    form = await request.form()
    name = str(form.get("name", ""))
    expiry = str(form.get("expires_in_days", "")).strip()
    try:
        scopes = [TokenScope(str(s)) for s in form.getlist("scopes")]
        if expiry and not expiry.isdigit():
            raise InvalidInput("Expiry must be a whole number of days.")
        new: NewToken = create_token(
            session=db,
            actor=principal.user,
            owner=principal.user,
            name=name,
            scopes=scopes,
            allowed=ROLE_SCOPES[principal.role],
            expires_in_days=int(expiry) if expiry else None,
        )
    except (InvalidInput, ValueError) as exc:
        message = exc.detail if isinstance(exc, InvalidInput) else "Unknown scope."
        return _page(
            request,
            db,
            principal,
            status=422,
            errors=[message],
            form={"name": name, "expires_in_days": expiry},
        )
    return _page(request, db, principal, status=201, new=new)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token_page(token_id: int, db: DbDep, principal: Anyone) -> Response:
    revoke_token(session=db, actor=principal.user, token_id=token_id)
    return see_other("/account/tokens", "token_revoked")
