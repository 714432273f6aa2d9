"""Steps shared by the browser tests."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.live_server import LiveServer


def login_with_keyboard(page: Page, server: LiveServer, email: str, password: str) -> None:
    page.goto(f"{server.url}/login")
    # The e-mail field has autofocus; keys typed before the browser applies it would be lost.
    expect(page.locator("#email")).to_be_focused()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")


def wait_for_new_pair(page: Page, previous: str) -> None:
    # Locator assertions, not wait_for_function: the page's CSP forbids eval, as it should.
    expect(page.locator("#assignment-id")).not_to_have_value(previous)
    expect(page.locator("#prompt-text")).not_to_have_text("")
