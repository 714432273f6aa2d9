"""The job page in Debian's Chromium follows a running job without a reload: a new log line the
worker stored appears at the bottom of the log tail (which stays scrolled to the end, unless the
reader scrolled up), and once the job succeeds the model it produced appears as a link and the
page stops polling. A failed job shows its error and the Retry button the same way."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, func, update
from sqlalchemy.orm import Session

from backend.db.models import ModelArtifact, TrainingJob, User
from backend.domain.enums import JobKind, JobState, TokenScope, UserRole
from backend.services.tokens import create_token
from backend.services.users import create_user
from saferlhf_client import Client
from tests.e2e.helpers import login_with_keyboard
from tests.factories import DEFAULT_PASSWORD
from tests.factories.models import fake_model_dir
from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def log_lines(first: int, last: int) -> str:
    return "".join(f"[reward] step {i}: loss {1.0 / i:.4f}\n" for i in range(first, last + 1))


@dataclass
class Seeded:
    session: Session
    admin: User
    job_id: int

    def update_job(self, **values: Any) -> None:
        self.session.execute(update(TrainingJob).where(TrainingJob.id == self.job_id).values(**values))
        self.session.commit()


@pytest.fixture
def seeded(database_url: str) -> Iterator[Seeded]:
    engine = create_engine(database_url)
    session = Session(engine, expire_on_commit=False)
    admin = create_user(
        session=session,
        email=f"admin-{uuid.uuid4().hex[:8]}@example.test",
        password=DEFAULT_PASSWORD,
        role=UserRole.admin,
        display_name="Ada Admin",
    )
    job = TrainingJob(
        kind=JobKind.reward,
        state=JobState.running,
        attempt=1,
        worker_id="gpu0@trainer-1",
        config={"epochs": 1},
        total_steps=60,
        current_step=1,
        progress=1 / 60,
        started_at=func.now(),
        log_tail=log_lines(1, 1),
    )
    session.add(job)
    session.commit()
    yield Seeded(session, admin, job.id)
    session.close()
    engine.dispose()


def open_job_page(browser, server: LiveServer, seeded: Seeded) -> tuple[Any, Page, list[str], list[str]]:  # type: ignore[no-untyped-def]
    """The page, the URLs of its job polls, and every navigation of its main frame after the load."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if f"/api/v1/jobs/{seeded.job_id}" in r.url else None)
    login_with_keyboard(page, server, seeded.admin.email, DEFAULT_PASSWORD)
    page.wait_for_url("**/admin")
    page.goto(f"{server.url}/admin/jobs/{seeded.job_id}")
    navigations: list[str] = []
    page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)
    return context, page, polls, navigations


def at_bottom(page: Page) -> bool:
    return bool(page.eval_on_selector("#job-log", "e => e.scrollTop + e.clientHeight >= e.scrollHeight - 8"))


def test_the_job_page_follows_the_log_and_shows_the_produced_model_without_a_reload(
    browser, server: LiveServer, seeded: Seeded, screenshots: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    context, page, polls, navigations = open_job_page(browser, server, seeded)
    log = page.locator("#job-log")
    expect(log).to_contain_text("[reward] step 1: loss 1.0000")
    expect(page.locator("#job-live")).to_contain_text("updated")
    expect(page.locator("#job-models-empty")).to_be_visible()

    # The worker stores a longer tail: the new last line shows and the log follows the end.
    seeded.update_job(log_tail=log_lines(1, 40), current_step=40, progress=40 / 60)
    expect(log).to_contain_text("[reward] step 40: loss 0.0250")
    expect(page.locator("#job-progress-text")).to_have_text("66.7%")
    expect(page.locator("#job-step")).to_have_text("40")
    assert page.eval_on_selector("#job-log", "e => e.scrollHeight > e.clientHeight"), (
        "the log should overflow"
    )
    assert at_bottom(page), "the log tail did not follow its new last line"

    # A reader who scrolled up to read stays where they are while new lines arrive.
    page.eval_on_selector("#job-log", "e => { e.scrollTop = 0; }")
    seeded.update_job(log_tail=log_lines(1, 50), current_step=50, progress=50 / 60)
    expect(log).to_contain_text("[reward] step 50: loss 0.0200")
    assert page.eval_on_selector("#job-log", "e => e.scrollTop") == 0, "the log jumped away from the reader"

    # The job succeeds: its model is registered in the same transaction (worker/fence.py).
    scopes = [TokenScope.read, TokenScope.admin]
    token = create_token(
        session=seeded.session,
        actor=seeded.admin,
        owner=seeded.admin,
        name="e2e",
        scopes=scopes,
        allowed=set(scopes),
    ).secret
    seeded.session.commit()
    with Client(server.url, token=token) as api:
        model = api.register_model(fake_model_dir(tmp_path / "rm"), kind="reward", name="rm-live")
        # Another job's model, which the page must not list.
        api.register_model(fake_model_dir(tmp_path / "other", seed=1), kind="reward", name="rm-other")
    seeded.session.execute(
        update(ModelArtifact).where(ModelArtifact.id == model["id"]).values(training_job_id=seeded.job_id)
    )
    seeded.update_job(
        state=JobState.succeeded,
        progress=1.0,
        current_step=60,
        finished_at=func.now(),
        log_tail=log_lines(1, 60) + "[reward] saved the model\n",
    )
    link = page.get_by_role("link", name=f"reward model #{model['id']}: rm-live")
    expect(link).to_have_attribute("href", f"/admin/models/{model['id']}")
    expect(page.locator("#job-models li")).to_have_count(1)
    expect(page.locator("#job-models-empty")).to_be_hidden()
    expect(page.locator("#job-state [data-state]")).to_have_text("succeeded")
    expect(log).to_contain_text("[reward] saved the model")
    expect(page.locator("#job-live")).to_contain_text("Final state: succeeded")
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()
    assert navigations == [], f"the page reloaded: {navigations}"
    page.screenshot(path=str(screenshots / "admin-job-live.png"), full_page=True)

    job_polls = [u for u in polls if "/metrics" not in u]
    seeded.update_job(log_tail="written after the end\n")
    page.wait_for_timeout(4500)  # more than two poll periods
    assert [u for u in polls if "/metrics" not in u] == job_polls, "the page kept polling a finished job"
    expect(log).not_to_contain_text("written after the end")
    context.close()


def test_a_job_that_fails_while_the_page_is_open_shows_its_error_and_retry(
    browser, server: LiveServer, seeded: Seeded
) -> None:  # type: ignore[no-untyped-def]
    context, page, _, navigations = open_job_page(browser, server, seeded)
    expect(page.locator("#job-error")).to_be_hidden()
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()

    seeded.update_job(
        state=JobState.failed,
        error="reward: train_data has no rows",
        finished_at=func.now(),
        log_tail=log_lines(1, 2) + "ValueError: train_data has no rows\n",
    )
    expect(page.locator("#job-error")).to_have_text("reward: train_data has no rows")
    expect(page.locator("#job-log")).to_contain_text("ValueError: train_data has no rows")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    expect(page.locator("#job-finished time")).to_have_count(1)
    assert navigations == [], f"the page reloaded: {navigations}"
    context.close()
