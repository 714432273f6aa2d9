"""The job page in Debian's Chromium: metric rows inserted into the database while the page is open
appear in its charts without a reload, polling stops once the job is final, a chart saves as PNG,
and the page reaches no host but the server (plotly.min.js comes from the installed package)."""

from __future__ import annotations

import re
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from backend.db.models import Metric, ModelArtifact, TrainingJob, User
from backend.domain.enums import JobKind, JobState, TokenScope, UserRole
from backend.services.tokens import create_token
from backend.services.users import create_user
from saferlhf_client import Client
from tests.e2e.helpers import login_with_keyboard
from tests.factories import DEFAULT_PASSWORD
from tests.factories.models import fake_model_dir
from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
NAMES = ("train/loss", "eval/accuracy", "train/reward", "train/cost", "train/lambda", "train/kl_divergence")


# Each CSP violation as one console line naming the blocked element (an init script runs outside
# the page's CSP). The only violation expected: plotly.min.js bundles MapLibre, which injects its map
# stylesheet as an inline <style> at load; the charts use no maps, so blocking it changes nothing.
REPORT_CSP_VIOLATIONS = """document.addEventListener('securitypolicyviolation', function (e) {
  var t = e.target && e.target.outerHTML ? e.target.outerHTML.slice(0, 120) : String(e.target);
  console.error('csp-violation ' + e.violatedDirective + ' ' + t);
});"""
MAPLIBRE_STYLE = re.compile(r'^csp-violation style-src-elem <style id="[0-9a-f]{64}">\.maplibregl-map')
BROWSER_CSP_LINE = "Applying inline style violates the following Content Security Policy directive"


def unexpected(problems: list[str]) -> list[str]:
    maplibre = [p for p in problems if MAPLIBRE_STYLE.match(p)]
    rest = [p for p in problems if not MAPLIBRE_STYLE.match(p)]
    # Chromium logs its own line for the same violation; drop as many as were explained.
    for _ in maplibre:
        same = next((p for p in rest if p.startswith(BROWSER_CSP_LINE)), None)
        if same is not None:
            rest.remove(same)
    return rest


@dataclass
class Seeded:
    session: Session
    job_id: int
    admin_email: str

    def add_steps(self, steps: range) -> None:
        for step in steps:
            for i, name in enumerate(NAMES):
                value = 1.0 / step + 0.1 * i if name != "train/lambda" else 0.05 * step
                self.session.add(Metric(job_id=self.job_id, step=step, name=name, value=value))
        self.session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == self.job_id)
            .values(current_step=steps[-1], progress=steps[-1] / 40, eta_s=(40 - steps[-1]) * 1.5)
        )
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
        kind=JobKind.ppo_lag,
        state=JobState.running,
        attempt=1,
        worker_id="gpu0@trainer-1",
        config={"epochs": 1, "threshold": 0.0},
        total_steps=40,
        log_tail="[ppo-lag] step 12: reward 0.41 cost -0.12 lambda 0.60\n",
    )
    session.add(job)
    session.commit()
    yield Seeded(session, job.id, admin.email)
    session.close()
    engine.dispose()


def test_the_model_page_shows_lineage_files_and_a_download_that_matches_the_registry(
    browser, server: LiveServer, seeded: Seeded, screenshots: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    admin = seeded.session.scalar(select(User).where(User.email == seeded.admin_email))
    assert admin is not None
    scopes = [TokenScope.read, TokenScope.admin]
    token = create_token(
        session=seeded.session, actor=admin, owner=admin, name="e2e", scopes=scopes, allowed=set(scopes)
    ).secret
    seeded.session.commit()
    api = Client(server.url, token=token)
    parent = api.register_model(fake_model_dir(tmp_path / "sft"), kind="policy", name="sft-v1")
    model = api.register_model(
        fake_model_dir(tmp_path / "rm", seed=1), kind="reward", name="rm-v1", parent_id=parent["id"]
    )
    api.close()
    seeded.session.execute(
        update(ModelArtifact).where(ModelArtifact.id == model["id"]).values(training_job_id=seeded.job_id)
    )
    seeded.session.commit()

    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page = context.new_page()
    login_with_keyboard(page, server, seeded.admin_email, DEFAULT_PASSWORD)
    page.wait_for_url("**/admin")
    page.goto(f"{server.url}/admin/models")
    page.get_by_role("link", name=f"#{model['id']} rm-v1").click()
    expect(page.locator("#lineage")).to_contain_text("sft-v1")
    expect(page.locator("#lineage")).to_contain_text(f"job #{seeded.job_id}")
    expect(page.locator("#model-files tbody tr")).to_have_count(len(model["files"]))
    page.screenshot(path=str(screenshots / "admin-model.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    archive = tmp_path / "model.tar"
    download.value.save_as(archive)
    with tarfile.open(archive) as tar:
        names = sorted(m.name for m in tar.getmembers())
    assert names == sorted(f["path"] for f in model["files"])
    context.close()


def test_the_job_page_charts_new_metric_rows_live_and_stops_when_the_job_is_final(
    browser, server: LiveServer, seeded: Seeded, screenshots: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    seeded.add_steps(range(1, 13))
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    attempted: list[str] = []
    problems: list[str] = []
    polls: list[str] = []

    def guard(route) -> None:  # type: ignore[no-untyped-def]
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            attempted.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.add_init_script(REPORT_CSP_VIOLATIONS)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: polls.append(r.url) if "/metrics" in r.url else None)
    login_with_keyboard(page, server, seeded.admin_email, DEFAULT_PASSWORD)
    page.wait_for_url("**/admin")
    navigations: list[str] = []
    page.goto(f"{server.url}/admin/jobs/{seeded.job_id}")
    page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)

    loss = page.locator('.job-chart[data-metric="train/loss"]')
    expect(loss).to_have_attribute("data-points", "12")
    expect(page.locator(".job-chart")).to_have_count(len(NAMES))
    expect(loss.locator("path.js-line")).to_have_count(1)  # Plotly drew the line

    seeded.add_steps(range(13, 21))  # the worker ingests more steps while the page is open
    expect(loss).to_have_attribute("data-points", "20")
    expect(page.locator('.job-chart[data-metric="train/lambda"]')).to_have_attribute("data-points", "20")
    expect(page.locator("#job-step")).to_have_text("20")
    expect(page.locator("#job-progress-text")).to_have_text("50.0%")
    assert navigations == [], f"the page reloaded: {navigations}"
    page.screenshot(path=str(screenshots / "admin-job.png"), full_page=True)

    with page.expect_download() as download:
        loss.hover()
        loss.locator('.modebar-btn[data-title="Download plot as a PNG"]').click()
    saved = tmp_path / "chart.png"
    download.value.save_as(saved)
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    seeded.session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == seeded.job_id)
        .values(state=JobState.succeeded, progress=1.0)
    )
    seeded.session.commit()
    expect(page.locator("#job-charts")).to_have_attribute("data-final", "true")
    expect(page.locator("#job-state [data-state]")).to_have_text("succeeded")
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    polls_at_final = len(polls)
    seeded.add_steps(range(21, 23))
    page.wait_for_timeout(5000)  # two and a half poll periods
    assert len(polls) == polls_at_final, "the page kept polling a finished job"
    expect(loss).to_have_attribute("data-points", "20")

    page.goto(f"{server.url}/admin/jobs")
    expect(page.locator(f'tr[data-job-id="{seeded.job_id}"]')).to_be_visible()
    page.screenshot(path=str(screenshots / "admin-jobs.png"))

    assert attempted == [], f"the job page tried to reach other hosts: {attempted}"
    assert unexpected(problems) == [], f"console or page errors (CSP violations among them): {problems}"
    context.close()
