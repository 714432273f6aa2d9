"""The API explorer works offline: /docs (Swagger UI) and /redoc (ReDoc) render every operation in
Debian's Chromium with every request to another host aborted, and none is even attempted. "Try it
out" on GET /healthz executes and shows the 200."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def operation_count(server: LiveServer) -> int:
    spec = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    return sum(1 for item in spec["paths"].values() for method in item if method in HTTP_METHODS)


def offline_page(browser, attempted: list[str], problems: list[str]):  # type: ignore[no-untyped-def]
    """A page whose requests to any other host are recorded and aborted, as if there were no
    network; console errors (CSP violations among them) and page errors are recorded too."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})

    def guard(route) -> None:  # type: ignore[no-untyped-def]
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            attempted.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page


def test_swagger_ui_renders_every_operation_offline_and_try_it_out_gets_200(
    browser, server: LiveServer, screenshots: Path
) -> None:  # type: ignore[no-untyped-def]
    attempted: list[str] = []
    problems: list[str] = []
    page = offline_page(browser, attempted, problems)
    page.goto(f"{server.url}/docs")

    expect(page.locator(".opblock")).to_have_count(operation_count(server))
    health = page.locator(".opblock").filter(has=page.locator('[data-path="/healthz"]'))
    health.locator(".opblock-summary").click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    status = health.locator(".live-responses-table tr.response .response-col_status")
    expect(status).to_have_text("200")
    body = health.locator(".live-responses-table tr.response .response-col_description")
    expect(body).to_contain_text('"status": "ok"')
    page.screenshot(path=str(screenshots / "api-docs-swagger.png"))

    assert attempted == [], f"the explorer tried to reach other hosts: {attempted}"
    assert problems == [], f"console or page errors: {problems}"
    page.context.close()


def test_redoc_renders_every_operation_offline(browser, server: LiveServer, screenshots: Path) -> None:  # type: ignore[no-untyped-def]
    attempted: list[str] = []
    problems: list[str] = []
    page = offline_page(browser, attempted, problems)
    page.goto(f"{server.url}/redoc")

    expect(page.get_by_role("heading", name="Safe RLHF platform", level=1)).to_be_visible()
    # ReDoc gives each operation a section with id "operation/<operationId>".
    expect(page.locator('[id^="operation/"]')).to_have_count(operation_count(server))
    page.screenshot(path=str(screenshots / "api-docs-redoc.png"))

    assert attempted == [], f"ReDoc tried to reach other hosts: {attempted}"
    # ReDoc's side-menu credit always points an <img> at its CDN logo (no option turns it off). The
    # page's CSP blocks it before any request leaves the browser (hence nothing in `attempted`), and
    # ReDoc hides the image on that error. Anything else in the console is a failure.
    unexpected = [p for p in problems if not (REDOC_LOGO in p and "Content Security Policy" in p)]
    assert unexpected == [], f"console or page errors: {unexpected}"
    page.context.close()
