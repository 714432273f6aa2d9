"""The API explorer at /docs (Swagger UI) and /redoc (ReDoc), with no CDN.

The two bundles come from the installed `fastapi-offline` wheel (third-party front-end code is a
dependency, never a copy in the repo) and are served under /static/api-docs. The pages are our own
templates: the start-up code of Swagger UI is a /static script that reads the spec URL from a data
attribute, so the pages need no inline script and keep `script-src 'self'` (backend/web/security.py).
"""

from __future__ import annotations

import importlib.util

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from backend.edge.deps import public

ASSETS_URL = "/static/api-docs"
ASSETS_PACKAGE = "fastapi_offline"

router = APIRouter(include_in_schema=False, dependencies=[Depends(public())])


def mount_api_docs_assets(app: FastAPI) -> None:
    """Serve the bundles from the installed package; mount before /static, which would shadow it."""
    if importlib.util.find_spec(ASSETS_PACKAGE) is None:
        raise RuntimeError("fastapi-offline (the API explorer's assets) is not installed; run `make install`")
    assets = StaticFiles(packages=[(ASSETS_PACKAGE, "static")])
    app.mount(ASSETS_URL, assets, name="api-docs-assets")


def _page(request: Request, template: str) -> HTMLResponse:
    context = {"openapi_url": request.app.openapi_url, "assets": ASSETS_URL, "title": request.app.title}
    response: HTMLResponse = request.app.state.templates.TemplateResponse(request, template, context)
    return response


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    return _page(request, "api_docs/swagger.html")


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    return _page(request, "api_docs/redoc.html")
