"""The import form in Chromium: the HH-RLHF axis field appears only for HH-RLHF files, a missing
axis brings the form back with the chosen file kept, and submitting again imports it."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import REPO_ROOT
from tests.e2e.helpers import login_with_keyboard
from tests.support.live_server import LiveServer
from tests.support.seed import seed_world

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
HH = REPO_ROOT / "docs" / "examples" / "hh_rlhf_harmless_sample.jsonl"


def test_the_axis_field_follows_the_kind_and_a_missing_axis_keeps_the_file(
    server: LiveServer, browser, database_url: str, screenshots: Path
) -> None:  # type: ignore[no-untyped-def]
    world = seed_world(database_url)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    try:
        login_with_keyboard(page, server, world.admin_email, world.password)
        page.wait_for_url(lambda url: "/login" not in url)
        page.goto(f"{server.url}/admin/projects/{world.project_id}")
        axis = page.locator("#hh-axis-field")
        expect(axis).to_be_hidden()
        page.select_option("#kind", "hh_rlhf")
        expect(axis).to_be_visible()
        page.set_input_files("#file", str(HH))
        page.select_option("#on_error", "skip_rows")
        page.get_by_role("button", name="Import", exact=True).click()

        expect(page.get_by_text("Choose the preference axis of this HH-RLHF file")).to_be_visible()
        expect(page.locator("#kept-file")).to_contain_text(f"File {HH.name} kept")
        expect(page.locator("#kind")).to_have_value("hh_rlhf")
        expect(page.locator("#on_error")).to_have_value("skip_rows")
        expect(axis).to_be_visible()
        page.screenshot(path=str(screenshots / "import-form-file-kept.png"), full_page=True)

        page.select_option("#hh_axis", "harmlessness")
        page.get_by_role("button", name="Import", exact=True).click()
        expect(page.get_by_role("heading", name=f"Import of {HH.name}")).to_be_visible()
        expect(page.get_by_role("status")).to_contain_text("2 imported, 0 duplicates skipped, 0 rejected")
        page.reload()  # a GET of the report: nothing is uploaded again
        expect(page.get_by_role("status")).to_contain_text("2 imported")
    finally:
        page.close()
