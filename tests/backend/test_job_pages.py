"""The admin jobs and models pages, the metrics endpoint behind the live charts, cancel and retry
from the page, and plotly.min.js served from the installed package. Real Postgres and broker."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from backend.db.models import TrainingJob
from backend.domain.enums import ArtifactKind, JobState, UserRole
from backend.services.snapshots import create_snapshot
from tests.factories import login, make_user
from tests.factories.annotation import csrf_of, make_project, token_headers
from tests.factories.models import add_metrics, make_job, register_fake

NAMES = ("train/loss", "eval/accuracy", "train/lambda")


@pytest.fixture
def admin(app, db_session):  # type: ignore[no-untyped-def]
    user = make_user(db_session, role=UserRole.admin)
    client = TestClient(app, follow_redirects=False)
    login(client, user.email)
    return user, client


def test_the_jobs_list_shows_state_kind_project_attempt_progress_and_filters_by_state(  # type: ignore[no-untyped-def]
    admin, db_session
) -> None:
    user, client = admin
    project = make_project(db_session, user, name="jobs-page-project")
    running = make_job(db_session, project_id=project.id)
    failed = make_job(db_session, state=JobState.failed, error="boom", attempt=3)
    page = client.get("/admin/jobs")
    assert page.status_code == 200
    assert f'href="/admin/jobs/{running.id}"' in page.text and f'href="/admin/jobs/{failed.id}"' in page.text
    assert "jobs-page-project" in page.text and "3/3" in page.text and 'value="0.4"' in page.text
    only_failed = client.get("/admin/jobs?state=failed").text
    assert f'data-job-id="{failed.id}"' in only_failed and f'data-job-id="{running.id}"' not in only_failed
    assert client.get("/admin/jobs?state=nonsense").status_code == 200  # an unknown filter shows all


def test_the_job_page_shows_progress_eta_worker_error_log_inputs_and_produced_models(  # type: ignore[no-untyped-def]
    admin, db_session, settings, tmp_path
) -> None:
    user, client = admin
    project = make_project(db_session, user)
    snapshot = create_snapshot(
        session=db_session, actor=user, project=project, artifacts_dir=settings.artifacts_dir
    ).snapshot
    base = register_fake(db_session, settings, tmp_path, kind=ArtifactKind.policy)
    job = make_job(
        db_session,
        project_id=project.id,
        inputs={"snapshot_id": snapshot.id, "base_model_id": base.id},
        log_tail="step 40 loss 0.61\n<script>alert(1)</script>",
        error="CUDA out of memory; lower per_device_train_batch_size",
    )
    produced = register_fake(db_session, settings, tmp_path, training_job_id=job.id, snapshot_id=snapshot.id)
    add_metrics(db_session, job, range(1, 6), NAMES)
    html = client.get(f"/admin/jobs/{job.id}").text
    assert 'id="job-progress"' in html and 'value="0.4"' in html and "1 min 15 s" in html  # ETA 75 s
    assert "gpu-worker@host-1" in html
    assert re.search(r'id="job-attempt">1</span> of <span id="job-max-attempts">3<', html)
    assert "CUDA out of memory" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert f'href="/api/v1/snapshots/{snapshot.id}"' in html and f'href="/admin/models/{base.id}"' in html
    assert f'href="/admin/models/{produced.id}"' in html
    listed = client.get("/api/v1/models", params={"training_job_id": job.id}).json()
    assert [m["id"] for m in listed] == [produced.id]  # what the live page asks for once the job ends
    assert '<script src="/vendor/plotly.min.js"></script>' in html
    assert re.search(rf'id="job-charts"[^>]*data-job-id="{job.id}"', html)
    # Both forms are in the page (the live script shows the one that applies); a running job's
    # Retry is hidden.
    assert re.search(rf'action="/admin/jobs/{job.id}/cancel"[^>]*data-when="queued running">', html)
    assert re.search(rf'action="/admin/jobs/{job.id}/retry"[^>]*data-when="failed cancelled" hidden>', html)


def test_the_job_page_and_the_api_show_the_world_size_and_say_metrics_come_from_rank_0(  # type: ignore[no-untyped-def]
    admin, db_session
) -> None:
    user, client = admin
    single = make_job(db_session)
    eight = make_job(db_session, gpus=8, nodes=1)
    sixteen = make_job(db_session, gpus=16, nodes=2)

    def shown(job: TrainingJob) -> str:
        html = client.get(f"/admin/jobs/{job.id}").text
        found = re.search(r'<span id="job-world-size">([^<]*)</span>', html)
        assert found is not None and 'id="rank-note"' in html and "rank 0 only" in html
        return found.group(1)

    assert shown(single) == "world size 1"
    assert shown(eight) == "world size 8 (8 GPUs × 1 node)"
    assert shown(sixteen) == "world size 16 (8 GPUs × 2 nodes)"
    headers = token_headers(db_session, user)
    api = TestClient(client.app)
    for job, size in ((single, 1), (eight, 8), (sixteen, 16)):
        body = api.get(f"/api/v1/jobs/{job.id}", headers=headers).json()
        assert (body["world_size"], body["gpus"], body["nodes"]) == (size, job.gpus, job.nodes)


def test_the_metrics_endpoint_returns_only_steps_after_the_given_one_grouped_per_metric(  # type: ignore[no-untyped-def]
    admin, db_session
) -> None:
    _, client = admin
    job = make_job(db_session)
    add_metrics(db_session, job, range(1, 11), NAMES)
    first = client.get(f"/api/v1/jobs/{job.id}/metrics").json()
    assert first["state"] == "running" and first["last_step"] == 10 and first["progress"] == 0.4
    assert set(first["series"]) == set(NAMES)
    assert [p[0] for p in first["series"]["train/loss"]] == list(range(1, 11))
    assert first["series"]["train/loss"][0] == [1, 0.5]
    add_metrics(db_session, job, range(11, 14), NAMES)
    later = client.get(f"/api/v1/jobs/{job.id}/metrics", params={"after_step": first["last_step"]}).json()
    assert {name: [p[0] for p in points] for name, points in later["series"].items()} == {
        name: [11, 12, 13] for name in NAMES
    }
    assert later["last_step"] == 13
    nothing = client.get(f"/api/v1/jobs/{job.id}/metrics", params={"after_step": 13}).json()
    assert nothing["series"] == {} and nothing["last_step"] == 13
    only = client.get(f"/api/v1/jobs/{job.id}/metrics", params={"name": "train/lambda"}).json()
    assert list(only["series"]) == ["train/lambda"]
    assert client.get("/api/v1/jobs/999999/metrics").status_code == 404


def test_a_large_backlog_is_paged_at_a_step_boundary(db_session) -> None:  # type: ignore[no-untyped-def]
    from backend.services.job_metrics import list_metrics

    job = make_job(db_session)
    add_metrics(db_session, job, range(1, 21), NAMES)
    page = list_metrics(session=db_session, job_id=job.id, after_step=None, max_points=10)
    assert page.last_step == 3 and all(len(points) == 3 for points in page.series.values())
    rest = list_metrics(session=db_session, job_id=job.id, after_step=page.last_step)
    assert [p[0] for p in rest.series["train/loss"]] == list(range(4, 21))


def test_cancel_and_retry_buttons_post_with_csrf_and_redirect(admin, db_session) -> None:  # type: ignore[no-untyped-def]
    user, client = admin
    csrf = csrf_of(db_session, user)
    queued = make_job(db_session, state=JobState.queued)
    assert client.post(f"/admin/jobs/{queued.id}/cancel", data={}).status_code == 403  # no CSRF token
    response = client.post(f"/admin/jobs/{queued.id}/cancel", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/jobs/{queued.id}?notice=job_cancelled"
    db_session.expire_all()
    assert db_session.get(TrainingJob, queued.id).state is JobState.cancelled
    page = client.get(response.headers["location"]).text
    assert "Cancel requested" in page and f'action="/admin/jobs/{queued.id}/retry"' in page

    again = client.post(f"/admin/jobs/{queued.id}/cancel", data={"csrf_token": csrf})
    assert again.headers["location"].endswith("notice=job_not_cancellable")
    retried = client.post(f"/admin/jobs/{queued.id}/retry", data={"csrf_token": csrf})
    assert retried.status_code == 303 and retried.headers["location"].endswith("notice=job_retried")
    db_session.expire_all()
    job = db_session.get(TrainingJob, queued.id)
    assert job.state is JobState.queued and job.published_at is not None  # published to the broker


def test_a_running_job_is_marked_for_cancellation_for_its_worker_to_stop(admin, db_session) -> None:  # type: ignore[no-untyped-def]
    user, client = admin
    job = make_job(db_session)
    client.post(f"/admin/jobs/{job.id}/cancel", data={"csrf_token": csrf_of(db_session, user)})
    db_session.expire_all()
    row = db_session.get(TrainingJob, job.id)
    assert row.state is JobState.running and row.cancel_requested
    page = client.get(f"/admin/jobs/{job.id}").text
    assert re.search(rf'action="/admin/jobs/{job.id}/cancel"[^>]*data-when="queued running" hidden>', page)
    assert re.search(r'id="job-cancel-requested">cancel requested<', page)


def test_model_pages_show_lineage_with_links_and_a_download(admin, db_session, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    user, client = admin
    project = make_project(db_session, user)
    snapshot = create_snapshot(
        session=db_session, actor=user, project=project, artifacts_dir=settings.artifacts_dir
    ).snapshot
    job = make_job(db_session, state=JobState.succeeded, project_id=project.id)
    add_metrics(db_session, job, range(1, 4), NAMES)
    model = register_fake(
        db_session, settings, tmp_path, project_id=project.id, snapshot_id=snapshot.id, training_job_id=job.id
    )
    html = client.get(f"/admin/models/{model.id}").text
    assert f'href="/api/v1/models/{model.id}/archive"' in html
    assert f'href="/api/v1/snapshots/{snapshot.id}/files/votes.jsonl"' in html
    assert f'href="/admin/jobs/{job.id}"' in html and model.sha256 in html
    assert "extra/notes.txt" in html and "train/loss" in html  # files and final metrics
    project_page = client.get(f"/admin/projects/{project.id}").text
    assert f'href="/admin/models?snapshot_id={snapshot.id}"' in project_page  # snapshot -> its models
    listing = client.get(f"/admin/models?snapshot_id={snapshot.id}").text
    assert f'data-model-id="{model.id}"' in listing
    assert f'data-model-id="{model.id}"' not in client.get("/admin/models?kind=cost").text


def test_plotly_is_served_from_the_installed_package(client) -> None:  # type: ignore[no-untyped-def]
    import importlib.util
    from pathlib import Path

    response = client.get("/vendor/plotly.min.js")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/javascript")
    spec = importlib.util.find_spec("plotly")
    assert spec is not None and spec.submodule_search_locations
    shipped = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    assert response.content == shipped.read_bytes()


@pytest.mark.parametrize("role", [UserRole.reviewer, UserRole.annotator])
def test_reviewers_and_annotators_get_403_on_job_and_model_pages(app, db_session, role) -> None:  # type: ignore[no-untyped-def]
    job = make_job(db_session)
    user = make_user(db_session, role=role)
    browser = TestClient(app, follow_redirects=False)
    login(browser, user.email)
    for path in ("/admin/jobs", f"/admin/jobs/{job.id}", "/admin/models"):
        assert browser.get(path).status_code == 403, path
    api = TestClient(app, follow_redirects=False)
    api.headers.update(token_headers(db_session, user))
    assert api.get(f"/api/v1/jobs/{job.id}/metrics").status_code == 403


def test_the_chart_page_relaxes_csp_only_for_an_empty_style_element_and_blob_images(
    admin, db_session
) -> None:  # type: ignore[no-untyped-def]
    from backend.web.security import CSP

    _, client = admin
    job = make_job(db_session)
    policy = client.get(f"/admin/jobs/{job.id}").headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "style-src 'self' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=';" in policy  # sha256("")
    assert "script-src 'self';" in policy and "img-src 'self' data: blob:;" in policy
    assert client.get("/admin/jobs").headers["content-security-policy"] == CSP
