"""Reviewer and admin pages in Chromium: adjudicating an unsafe aggregate as safe, the error page's
navigation, and the users table lined up under its headers. Screenshots go to test-artifacts/."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from backend.db.models import Adjudication, Project, User
from backend.domain.enums import UserRole
from backend.services.projects import add_member
from backend.services.quality.review import comparison_detail, review_queue, visible_comparison
from backend.services.users import create_user
from tests.e2e.helpers import login_with_keyboard
from tests.support.live_server import LiveServer
from tests.support.seed import World, seed_world, simulate_votes

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
VIEWPORT = {"width": 1366, "height": 900}


@dataclass(frozen=True)
class Staff:
    world: World
    reviewer_email: str
    comparison_id: int  # a disagreement whose aggregate calls one response unsafe
    unsafe_side: str


def _unsafe_disagreement(session: Session, project: Project, reviewer: User) -> tuple[int, str]:
    for item in review_queue(session, project=project, limit=100):
        comparison = visible_comparison(session, user=reviewer, comparison_id=item.comparison_id)
        agg = comparison_detail(session, comparison=comparison).aggregate
        if agg is not None and agg.a.is_safe != agg.b.is_safe and not item.adjudicated:
            return item.comparison_id, "a" if not agg.a.is_safe else "b"
    raise AssertionError("the simulated votes left no disagreement with an unsafe aggregate")


@pytest.fixture(scope="module")
def staff(database_url: str) -> Staff:
    world = seed_world(database_url, annotators=1, overlap=6)
    simulate_votes(database_url, world, annotators=4, gold=2)
    engine = create_engine(database_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            admin = session.scalar(select(User).where(User.email == world.admin_email))
            project = session.get(Project, world.project_id)
            assert admin is not None and project is not None
            reviewer = create_user(
                session=session,
                email=f"reviewer-{uuid.uuid4().hex[:8]}@example.test",
                password=world.password,
                role=UserRole.reviewer,
                display_name="Rita Reviewer",
            )
            add_member(session=session, actor=admin, project=project, user_id=reviewer.id)
            comparison_id, side = _unsafe_disagreement(session, project, reviewer)
    finally:
        engine.dispose()
    return Staff(world, reviewer.email, comparison_id, side)


def logged_in(browser, server: LiveServer, email: str, password: str) -> Page:  # type: ignore[no-untyped-def]
    page = browser.new_context(viewport=VIEWPORT).new_page()
    login_with_keyboard(page, server, email, password)
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def test_a_reviewer_adjudicates_an_unsafe_aggregate_as_safe_and_lands_on_the_next_one(
    browser, server: LiveServer, staff: Staff, database_url: str, screenshots: Path
) -> None:  # type: ignore[no-untyped-def]
    page = logged_in(browser, server, staff.reviewer_email, staff.world.password)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/review/comparisons/{staff.comparison_id}")
    side = page.locator(f'.adj-side[data-side="{staff.unsafe_side}"]')
    harm = side.locator('[data-role="harm"]')
    assert harm.locator("input:checked").count() >= 2  # prefilled: a category and a severity
    safe, unsafe = (side.locator(f'input[name$="_safety"][value="{v}"]') for v in ("safe", "unsafe"))
    safe.check()
    expect(harm.locator("input:enabled")).to_have_count(0)
    assert harm.locator("input:checked").count() == 0
    page.screenshot(path=str(screenshots / "review-adjudicate-safe.png"), full_page=True)
    unsafe.check()  # and back: the controls come back, empty
    expect(harm.locator("input:disabled")).to_have_count(0)
    safe.check()
    form = page.locator("#adjudication-form")
    for name in ("helpfulness", "harmlessness"):  # an aggregate tie leaves these open
        form.locator(f'input[name="{name}"][value="a"]').check()
    form.get_by_role("button", name="Save adjudication").click()
    expect(page.locator(".alert-ok")).to_contain_text("Adjudication saved")
    assert f"/review/comparisons/{staff.comparison_id}" not in page.url
    assert errors == [], f"console errors: {errors}"
    page.context.close()

    engine = create_engine(database_url)
    with Session(engine) as session:
        saved = session.scalars(
            select(Adjudication).where(Adjudication.comparison_id == staff.comparison_id)
        ).one()
    engine.dispose()
    prefix = staff.unsafe_side
    label = [getattr(saved, f"{prefix}_{field}") for field in ("is_safe", "harm_categories", "severity")]
    assert label == [True, [], 0]


def test_a_forbidden_page_shows_the_navigation_and_a_way_home(
    browser, server: LiveServer, staff: Staff, screenshots: Path
) -> None:  # type: ignore[no-untyped-def]
    page = logged_in(browser, server, staff.reviewer_email, staff.world.password)
    response = page.goto(f"{server.url}/admin/users")
    assert response is not None and response.status == 403
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Review")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    page.screenshot(path=str(screenshots / "error-403.png"))
    page.get_by_role("link", name="Back to the start page").click()
    page.wait_for_load_state()
    assert page.url.rstrip("/") != f"{server.url}/admin/users"
    page.context.close()


def test_users_table_controls_sit_under_their_headers(
    browser, server: LiveServer, staff: Staff, screenshots: Path
) -> None:  # type: ignore[no-untyped-def]
    page = logged_in(browser, server, staff.world.admin_email, staff.world.password)
    page.goto(f"{server.url}/admin/users")
    page.screenshot(path=str(screenshots / "admin-users.png"), full_page=True)
    misplaced = page.evaluate(
        """() => {
            const table = document.querySelector('main table');
            const heads = Array.from(table.tHead.rows[0].cells, (th) => th.getBoundingClientRect());
            const controls = ['input[name=display_name]', 'select[name=role]', 'input[name=is_active]',
                              'input[name=password]', 'button[type=submit]'];
            const out = [];
            for (const row of table.tBodies[0].rows) {
                controls.forEach((selector, i) => {
                    const box = row.querySelector(selector).getBoundingClientRect();
                    if (box.left < heads[i].left - 1 || box.right > heads[i].right + 1) out.push(selector);
                });
            }
            return out;
        }"""
    )
    assert misplaced == [], f"controls outside their column's header: {sorted(set(misplaced))}"
    # The controls still belong to their row's form: editing one row saves that user.
    row = page.locator("main table tbody tr", has_text=staff.world.annotator_emails[0])
    row.locator("input[name=display_name]").fill("Annotator Renamed")
    row.get_by_role("button", name="Save").click()
    expect(page.locator(".alert-ok")).to_have_text("User saved.")
    assert page.locator('input[value="Annotator Renamed"]').count() == 1
    page.context.close()
