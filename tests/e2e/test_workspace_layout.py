"""The annotator workspace in Chromium: no sideways scrolling at laptop and narrow widths, the last
Human turn of a long dialogue in view, category chips readable when ticked, and a half-entered
answer that survives a reload. Each test has its own annotator, so their queues never mix."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import login_with_keyboard, wait_for_new_pair
from tests.support.live_server import LiveServer
from tests.support.seed import World, seed_world

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
LAST_TURN = "Human: So which of these should I try first tonight?"


def dialogue(i: int) -> str:
    """An HH-style prompt long enough to overflow the prompt box; it ends with LAST_TURN."""
    turns = []
    for n in range(12):
        turns.append(f"Human: Question {n} of dialogue {i}: " + "tell me more about the options. " * 3)
        turns.append(f"Assistant: Answer {n}: " + "here is a careful and fairly long reply. " * 4)
    return "\n\n".join([*turns, f"{LAST_TURN} ({i})"])


@pytest.fixture(scope="module")
def world(database_url: str) -> World:
    rows: list[dict[str, object]] = [
        {"prompt": dialogue(i), "response_0": f"Response zero {i}. " * 20, "response_1": f"Response one {i}."}
        for i in range(8)
    ]
    return seed_world(database_url, annotators=4, overlap=4, data_file=None, rows=rows)


def open_workspace(
    browser, server: LiveServer, world: World, who: int, width: int, height: int = 800
) -> Page:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    login_with_keyboard(page, server, world.annotator_emails[who], world.password)
    page.wait_for_url(f"**/annotate/{world.project_id}")
    expect(page.locator("#prompt-text")).not_to_have_text("")
    return page


def last_turn_box(page: Page) -> dict[str, float]:
    """Where the prompt's last Human turn is drawn, with the prompt box and the window."""
    return page.evaluate(
        """(marker) => {
            const box = document.getElementById("prompt-text");
            const node = box.firstChild;
            const start = node.textContent.lastIndexOf(marker);
            const range = document.createRange();
            range.setStart(node, start);
            range.setEnd(node, node.textContent.length);
            const turn = range.getBoundingClientRect();
            const frame = box.getBoundingClientRect();
            return {top: turn.top, bottom: turn.bottom, boxTop: frame.top, boxBottom: frame.bottom,
                    windowHeight: window.innerHeight, start: start};
        }""",
        LAST_TURN,
    )


def assert_last_turn_visible(page: Page) -> None:
    where = last_turn_box(page)
    assert where["start"] > 0, where
    assert where["boxTop"] - 1 <= where["top"] and where["bottom"] <= where["boxBottom"] + 1, where
    assert where["top"] >= 0 and where["bottom"] <= where["windowHeight"], where


# A 1280x800 laptop leaves about 680 px to the page (README screenshot); 1000 px is below the
# breakpoint where the two responses stack.
@pytest.mark.parametrize(("width", "height"), [(1280, 680), (1000, 800)])
def test_workspace_never_scrolls_sideways(
    browser, server: LiveServer, world: World, width: int, height: int, screenshots: Path
) -> None:  # type: ignore[no-untyped-def]
    page = open_workspace(browser, server, world, 0, width, height)
    page.keyboard.press("w")  # open the categories and severity too: every control is laid out
    sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    page.screenshot(path=str(screenshots / f"annotator-workspace-{width}x{height}.png"), full_page=True)
    assert sizes[0] <= sizes[1], f"the page is {sizes[0]} px wide in a {sizes[1]} px window"
    page.context.close()


def test_a_long_dialogue_opens_on_its_last_human_turn(browser, server: LiveServer, world: World) -> None:  # type: ignore[no-untyped-def]
    page = open_workspace(browser, server, world, 1, 1280)
    assert_last_turn_visible(page)  # the pair rendered by the server
    first = page.locator("#assignment-id").input_value()
    page.keyboard.press("k")  # skip: the next pair is rendered by annotate.js
    wait_for_new_pair(page, first)
    assert_last_turn_visible(page)
    page.context.close()


@pytest.mark.parametrize("width", [1280, 1000])
def test_ticked_category_chips_show_their_whole_label(
    browser, server: LiveServer, world: World, width: int, screenshots: Path
) -> None:  # type: ignore[no-untyped-def]
    page = open_workspace(browser, server, world, 2, width)
    page.keyboard.press("w")
    page.keyboard.press("r")
    chips = page.locator('.ws-response[data-side="left"] .chip')
    for _ in range(chips.count()):  # tick every category with the keyboard
        page.keyboard.press("Space")
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Escape")
    page.screenshot(path=str(screenshots / f"annotator-chips-{width}px.png"))
    clipped = page.evaluate(
        """() => Array.from(document.querySelectorAll('.chip:has(input:checked)'))
              .filter((chip) => [chip, chip.querySelector('span')]
                  .some((el) => el.scrollWidth > el.clientWidth))
              .map((chip) => chip.textContent.trim())"""
    )
    assert page.locator(".chip:has(input:checked)").count() == chips.count()
    assert clipped == [], f"cut-off chip labels: {clipped}"
    page.context.close()


def checked(page: Page) -> list[tuple[str, str]]:
    return sorted(
        (str(name), str(value))
        for name, value in page.evaluate(
            """() => Array.from(document.querySelectorAll('#annotation-form input:checked'),
                                (i) => [i.name, i.value])"""
        )
    )


def test_a_half_entered_answer_survives_a_reload_and_is_gone_after_submit(
    browser, server: LiveServer, world: World
) -> None:  # type: ignore[no-untyped-def]
    page = open_workspace(browser, server, world, 3, 1280)
    pair = page.locator("#assignment-id").input_value()
    for key in ("q", "o", "u", "Space", "Escape", "i", "a", "t"):
        page.keyboard.press(key)
    page.keyboard.type("half done")
    page.keyboard.press("Escape")
    before = checked(page)
    assert len(before) == 5, before  # two safeties, a category, a severity, helpfulness

    page.reload()
    expect(page.locator("#prompt-text")).not_to_have_text("")
    assert page.locator("#assignment-id").input_value() == pair
    assert checked(page) == before
    expect(page.locator("#rationale")).to_have_value("half done")
    # The restored answer is live: the right response's categories are usable, not greyed out.
    assert page.locator('.ws-response[data-side="right"] [data-role="categories"]').is_enabled()

    page.keyboard.press("z")
    page.keyboard.press("Enter")
    wait_for_new_pair(page, pair)
    assert checked(page) == []
    expect(page.locator("#rationale")).to_have_value("")
    page.reload()
    expect(page.locator("#prompt-text")).not_to_have_text("")
    assert checked(page) == []
    drafts = page.evaluate("() => Object.keys(localStorage).filter((k) => k.includes('draft'))")
    assert drafts == [], drafts  # the submitted pair's draft is gone
    page.context.close()
