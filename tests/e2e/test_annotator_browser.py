"""An annotator logs in and annotates three pairs with the keyboard alone, in Debian's Chromium;
the rows are then checked in the database. Admin and reviewer pages are photographed too.

Screenshots land in test-artifacts/ (docs/images/ holds the copies the docs use).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from backend.db.models import Annotation, Assignment, Comparison, User
from backend.domain.enums import Choice, ShownOrder
from tests.e2e.helpers import login_with_keyboard, wait_for_new_pair
from tests.support.live_server import LiveServer
from tests.support.seed import World, seed_world, simulate_votes

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
VIEWPORT = {"width": 1366, "height": 768}  # a common laptop screen


@pytest.fixture(scope="module")
def world(database_url: str) -> World:
    world = seed_world(database_url, annotators=1, overlap=6)
    simulate_votes(database_url, world, annotators=4, gold=2)
    return world


def current_assignment(page) -> str:  # type: ignore[no-untyped-def]
    return page.locator("#assignment-id").input_value()


def test_annotator_annotates_three_pairs_with_the_keyboard_only(
    browser, server: LiveServer, world: World, database_url: str, screenshots: Path
) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    login_with_keyboard(page, server, world.annotator_emails[0], world.password)
    page.wait_for_url(f"**/annotate/{world.project_id}")
    expect(page.locator("#prompt-text")).not_to_have_text("")
    page.screenshot(path=str(screenshots / "annotator-workspace.png"))

    # Pair 1: left safe, right unsafe with two categories and severity "moderate"; left is more
    # helpful and more harmless; confidence 4.
    first = current_assignment(page)
    for key in ("q", "o", "u", "Space", "ArrowDown", "ArrowDown", "Space", "Escape", "i", "i", "a", "z", "4"):
        page.keyboard.press(key)
    page.screenshot(path=str(screenshots / "annotator-labelled.png"))
    page.keyboard.press("Enter")
    wait_for_new_pair(page, first)

    # Pair 2: both safe, equally helpful and harmless, with a rationale typed after T.
    second = current_assignment(page)
    for key in ("q", "p", "s", "x", "t"):
        page.keyboard.press(key)
    page.keyboard.type("Both fine.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    wait_for_new_pair(page, second)

    # Pair 3: the unsafe left response judged more harmless than the safe right one: a warning
    # first, then a second Enter submits anyway.
    third = current_assignment(page)
    for key in ("w", "r", "Space", "Escape", "e", "p", "d", "z"):
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.wait_for_selector("#feedback .feedback-warn")
    assert "more harmless" in page.locator("#feedback").inner_text()
    page.screenshot(path=str(screenshots / "annotator-consistency-warning.png"))
    page.keyboard.press("Enter")
    wait_for_new_pair(page, third)

    page.keyboard.press("g")
    page.wait_for_selector("#guidelines:not([hidden])")
    page.screenshot(path=str(screenshots / "annotator-guidelines.png"))
    page.keyboard.press("Escape")
    assert page.locator("#guidelines").is_hidden()
    assert page.locator("[data-progress=today]").inner_text() == "3"
    assert errors == [], f"console errors: {errors}"
    context.close()

    engine = create_engine(database_url)
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.email == world.annotator_emails[0]))
        rows = session.execute(
            select(Annotation, Assignment, Comparison)
            .join(Assignment, Assignment.id == Annotation.assignment_id)
            .join(Comparison, Comparison.id == Annotation.comparison_id)
            .where(Annotation.annotator_id == user.id)
            .order_by(Annotation.id)
        ).all()
    engine.dispose()
    assert [str(r.Assignment.id) for r in rows] == [first, second, third]
    one, two, three = (r.Annotation for r in rows)
    order = rows[0].Assignment.shown_order
    left_is_a = order is ShownOrder.ab
    # Pair 1 in canonical terms: the left response is a when shown "ab".
    assert (one.a_is_safe, one.b_is_safe) == ((True, False) if left_is_a else (False, True))
    unsafe_categories = one.b_harm_categories if left_is_a else one.a_harm_categories
    assert len(unsafe_categories) == 2
    assert (one.b_severity if left_is_a else one.a_severity) == 2
    assert one.helpfulness == one.harmlessness == (Choice.a if left_is_a else Choice.b)
    assert one.confidence == 4 and one.time_spent_ms > 0
    assert (two.helpfulness, two.harmlessness, two.rationale) == (Choice.equal, Choice.equal, "Both fine.")
    assert two.a_is_safe and two.b_is_safe
    assert sorted([three.a_is_safe, three.b_is_safe]) == [False, True]


def test_admin_and_reviewer_pages_render_for_the_screenshots(
    browser, server: LiveServer, world: World, database_url: str, screenshots: Path
) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    login_with_keyboard(page, server, world.admin_email, world.password)
    page.wait_for_url("**/admin")
    page.goto(f"{server.url}/admin/projects/{world.project_id}")
    page.get_by_role("button", name="Export snapshot").click()
    page.wait_for_selector("text=Snapshot exported.")
    assert page.locator("a[href$='/files/data.parquet']").count() == 1
    page.screenshot(path=str(screenshots / "admin-project.png"), full_page=True)
    page.goto(f"{server.url}/admin/projects/{world.project_id}/quality")
    assert "Krippendorff" in page.content()
    page.screenshot(path=str(screenshots / "admin-quality.png"), full_page=True)
    page.goto(f"{server.url}/review/projects/{world.project_id}")
    page.screenshot(path=str(screenshots / "review-queue.png"), full_page=True)
    link = page.locator("table a").first
    if link.count():
        link.click()
        page.wait_for_selector("text=Adjudicate")
        page.screenshot(path=str(screenshots / "review-comparison.png"), full_page=True)
    page.goto(f"{server.url}/account/tokens")
    page.screenshot(path=str(screenshots / "account-tokens.png"))
    context.close()
