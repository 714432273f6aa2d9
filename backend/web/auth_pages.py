"""Login, logout and the landing page."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from backend.domain.enums import UserRole
from backend.domain.errors import NotAuthenticated, TooManyRequests
from backend.edge.deps import (
    ALL_ROLES,
    DbDep,
    Principal,
    SettingsDep,
    optional_principal,
    public,
    require,
    session_cookie_name,
)
from backend.services.sessions import authenticate, end_session, start_session

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "saferlhf_login_csrf"

HOME_BY_ROLE = {UserRole.annotator: "/annotate", UserRole.reviewer: "/review", UserRole.admin: "/admin"}


def safe_next(target: str | None) -> str:
    """Only same-site paths: a login link must not redirect to another site."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _login_page(
    request: Request, *, error: str | None = None, email: str = "", next_url: str = "/", status: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        "auth/login.html",
        {"error": error, "email": email, "next": next_url, "login_csrf": token, "user": None},
        status_code=status,
    )
    settings = request.app.state.settings
    # Double-submit token: a cross-site form cannot read this cookie to copy it into the form.
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        max_age=3600,
        path="/login",
    )
    return response


@router.get("/login", dependencies=[Depends(public())])
def login_form(
    request: Request, principal: Annotated[Principal | None, Depends(optional_principal)], next: str = "/"
) -> Response:
    if principal is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_url=safe_next(next))


@router.post("/login", dependencies=[Depends(public())])
async def login_submit(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, csrf_token):
        return _login_page(
            request,
            error="The form expired; please try again.",
            email=email,
            next_url=safe_next(next),
            status=403,
        )
    ip = request.client.host if request.client else "unknown"
    try:
        # argon2 is deliberately slow: keep it off the event loop.
        user = await run_in_threadpool(
            lambda: authenticate(session=db, settings=settings, email=email, password=password, ip=ip)
        )
    except TooManyRequests as exc:
        page = _login_page(request, error=exc.detail, email=email, next_url=safe_next(next), status=429)
        page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    except NotAuthenticated as exc:
        return _login_page(
            request, error=exc.detail.capitalize() + ".", email=email, next_url=safe_next(next), status=401
        )
    new = start_session(
        session=db, settings=settings, user=user, user_agent=request.headers.get("user-agent")
    )
    target = safe_next(next)
    if target == "/":
        target = HOME_BY_ROLE[user.role]
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        session_cookie_name(settings),
        new.cookie_value,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
        max_age=settings.session_absolute_hours * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(
    db: DbDep, settings: SettingsDep, principal: Annotated[Principal, Depends(require(*ALL_ROLES))]
) -> Response:
    if principal.session_record is not None:
        end_session(session=db, record=principal.session_record)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(session_cookie_name(settings), path="/")
    return response


@router.get("/", dependencies=[Depends(public())])
def home(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Response:
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(HOME_BY_ROLE[principal.role], status_code=303)


def require_page_login(principal: Principal | None) -> Principal:
    if principal is None:
        raise NotAuthenticated("log in first")
    return principal
