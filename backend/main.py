"""create_app(): routers, static files, templates, error handlers and security headers."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import sessionmaker

from backend.api.errors import install_error_handlers
from backend.api.limits import BodyLimit
from backend.api.router import api_router
from backend.api.routes import health
from backend.config import Settings, get_settings
from backend.db.session import make_engine
from backend.web import (
    account_pages,
    admin_pages,
    admin_project_pages,
    admin_quality_pages,
    admin_user_pages,
    annotate_pages,
    api_docs,
    auth_pages,
    job_pages,
    model_pages,
    red_team_pages,
    review_pages,
    round_launcher,
    round_pages,
)
from backend.web.api_docs import mount_api_docs_assets
from backend.web.security import install_security_headers
from backend.web.templating import make_templates

DEFAULT_MAX_BODY = 2 * 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024

API_DESCRIPTION = """
REST API of the Safe RLHF platform. Authenticate with `Authorization: Bearer <token>` (API tokens
are created by admins and shown once) or, from the browser, with the session cookie plus an
`X-CSRF-Token` header on writes. Every error has the shape `{"detail": "...", "code": "..."}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_production_ready()
    app = FastAPI(
        title="Safe RLHF platform",
        version="0.1.0",
        description=API_DESCRIPTION,
        # /docs and /redoc are our own pages over locally served bundles (backend/web/api_docs.py).
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    # The app owns its engine, so an app built for another database (tests, tools) never shares
    # the process-wide one.
    app.state.engine = make_engine(settings)
    app.state.sessionmaker = sessionmaker(bind=app.state.engine, expire_on_commit=False)
    app.state.templates = make_templates(settings.frontend_dir)
    install_error_handlers(app)
    # Every JSON or form body is small; only dataset uploads may be large (docs/design/reliability.md C10).
    # Added before the security headers so that its early 413 answers carry them too.
    upload_limit = settings.import_max_bytes + MULTIPART_OVERHEAD
    model_limit = settings.model_upload_max_bytes + MULTIPART_OVERHEAD
    app.add_middleware(
        BodyLimit, default_limit=DEFAULT_MAX_BODY, upload_limit=upload_limit, model_limit=model_limit
    )
    install_security_headers(app, settings)
    mount_api_docs_assets(app)
    app.mount("/static", StaticFiles(directory=str(settings.frontend_dir / "static")), name="static")
    app.include_router(api_router)
    app.include_router(health.router)
    app.include_router(api_docs.router)
    app.include_router(auth_pages.router)
    app.include_router(admin_pages.router)
    for pages in (annotate_pages, review_pages, admin_project_pages, admin_quality_pages, admin_user_pages):
        app.include_router(pages.router)
    app.include_router(account_pages.router)
    app.include_router(job_pages.router)
    app.include_router(model_pages.router)
    app.include_router(round_launcher.router)
    app.include_router(round_pages.router)
    app.include_router(red_team_pages.router)
    logging.getLogger(__name__).info("app created (environment=%s)", settings.environment)
    return app
