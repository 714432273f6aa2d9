"""One error shape everywhere: `{"detail": ..., "code": ...}` for the API, an error page for HTML.

No traceback or internal path ever reaches a response; unexpected errors are logged instead.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.domain.errors import DomainError, TooManyRequests

logger = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    503: "service_unavailable",
}


def wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/healthz", "/docs", "/openapi")):
        return False
    return "text/html" in request.headers.get("accept", "")


def render_error(
    request: Request,
    status: int,
    detail: str,
    code: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if wants_html(request):
        templates = request.app.state.templates
        if status == 401:
            from fastapi.responses import RedirectResponse

            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        page: Response = templates.TemplateResponse(
            request,
            "errors/error.html",
            {"status": status, "detail": detail, "code": code, **page_user(request)},
            status_code=status,
            headers=headers,
        )
        return page
    body: dict[str, Any] = {"detail": detail, "code": code}
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers)


def page_user(request: Request) -> dict[str, Any]:
    """The logged-in browser user, so that an error page keeps the navigation (a 403 is no dead
    end). Only a session cookie's user: its row was loaded when the cookie was checked."""
    principal = getattr(request.state, "principal", None)
    record = getattr(principal, "session_record", None)
    if record is None:
        return {}
    try:  # a rollback on the way here may have expired the row: then the page goes without the nav
        user = record.user
        context = {"user": user, "csrf": record.csrf_token, "path": request.url.path}
        _ = (user.role, user.display_name)
    except sa_exc.SQLAlchemyError:
        return {}
    return context


def identify_browser_user(request: Request) -> None:
    """An unknown URL fails in the router, before any dependency has read the session cookie; read
    it here so that the 404 page keeps the navigation too. Any failure leaves the page without it."""
    from backend.config import get_settings
    from backend.db.session import get_sessionmaker
    from backend.edge.deps import get_db, session_cookie_name
    from backend.edge.principal import principal_from_session
    from backend.services.sessions import resolve_session

    settings = getattr(request.app.state, "settings", None) or get_settings()
    cookie = request.cookies.get(session_cookie_name(settings))
    if not cookie:
        return
    # The routes' own database session where the app overrides it (as the tests do), else a new one.
    override = request.app.dependency_overrides.get(get_db)
    factory = getattr(request.app.state, "sessionmaker", None) or get_sessionmaker()
    with contextlib.nullcontext(override()) if override else factory() as db:
        try:
            record = resolve_session(session=db, settings=settings, cookie_value=cookie)
            if record is None:
                return
            # Load what the page shows while the session is open: the page renders after it closes.
            _ = (record.csrf_token, record.user.role, record.user.display_name, record.user.email)
            request.state.principal = principal_from_session(record)
        except sa_exc.SQLAlchemyError:
            logger.warning("no navigation on a 404 page: the session lookup failed", exc_info=True)


DATABASE_RETRY_AFTER_S = 5


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, TooManyRequests) else None
        return render_error(request, exc.status_code, exc.detail, exc.code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(first['loc'][1:]) or 'request'}: {first['msg']}"
        return render_error(request, 422, detail, "invalid_input", extra={"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if (
            exc.status_code == 404
            and wants_html(request)
            and getattr(request.state, "principal", None) is None
        ):
            await run_in_threadpool(identify_browser_user, request)
        return render_error(
            request,
            exc.status_code,
            detail,
            HTTP_CODES.get(exc.status_code, "error"),
            headers=getattr(exc, "headers", None),
        )

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        # Postgres is down, restarting or out of connections: nothing was written, and the same
        # request can simply be sent again (submits carry an Idempotency-Key).
        logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return render_error(
            request,
            503,
            "the database is unavailable right now; nothing was saved, try again in a few seconds",
            "database_unavailable",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )

    # SQLAlchemy's wrappers (connection checkout, ORM queries, pool timeouts) and psycopg's own
    # errors from the prepared statements of the hot path (backend/db/raw.py).
    for kind in (sa_exc.OperationalError, sa_exc.TimeoutError, psycopg.OperationalError):
        app.add_exception_handler(kind, database_unavailable)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return render_error(
            request, 500, "internal error; the details are in the server log", "internal_error"
        )


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    templates = request.app.state.templates
    response: HTMLResponse = templates.TemplateResponse(
        request,
        "errors/error.html",
        {"status": status, "detail": detail, "code": HTTP_CODES.get(status, "error"), **page_user(request)},
        status_code=status,
    )
    return response
