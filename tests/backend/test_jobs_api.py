"""Submitting training jobs over REST: validation before anything is queued, the identical
succeeded job returned instead of a new one, cancel and retry, the log tail."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from backend.db.models import DatasetSnapshot, ModelArtifact, TrainingJob
from backend.domain.enums import ArtifactKind, JobState, UserRole
from tests.factories import make_user
from tests.factories.annotation import make_project, token_headers


@pytest.fixture
def admin_headers(db_session) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return token_headers(db_session, make_user(db_session, role=UserRole.admin))


@pytest.fixture
def inputs(db_session, settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A snapshot row and a model row (the files are not needed to submit)."""
    admin = make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin)
    sha = hashlib.sha256(f"snap-{project.id}".encode()).hexdigest()
    snapshot = DatasetSnapshot(
        project_id=project.id,
        content_sha256=sha,
        storage_key=f"snapshots/{sha}",
        row_count=1,
        vote_count=1,
        size_bytes=1,
    )
    model = ModelArtifact(
        kind=ArtifactKind.policy, name="base", sha256="b" * 64, storage_key=f"models/test{project.id}"
    )
    db_session.add_all([snapshot, model])
    db_session.commit()
    return {"project_id": project.id, "snapshot_id": snapshot.id, "base_model_id": model.id}


def body(inputs: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {
        "kind": "reward",
        "project_id": inputs["project_id"],
        "config": {"max_steps": 3, **config},
        "inputs": {"snapshot_id": inputs["snapshot_id"], "base_model_id": inputs["base_model_id"]},
    }


def job_count(db_session) -> int:  # type: ignore[no-untyped-def]
    return int(db_session.scalar(select(func.count()).select_from(TrainingJob)))


def test_a_misspelt_option_is_422_with_the_clis_message_and_nothing_is_queued(
    client, db_session, admin_headers, inputs
) -> None:  # type: ignore[no-untyped-def]
    before = job_count(db_session)
    response = client.post("/api/v1/jobs", json=body(inputs, learnig_rate=1e-4), headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_config"
    assert response.json()["detail"] == (
        "unknown option 'learnig_rate' for stage 'reward'; did you mean 'learning_rate'?"
    )
    assert job_count(db_session) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"config": {"train_data": "/etc/passwd"}}, "option 'train_data' is set by the platform"),
        ({"config": {"output_dir": "/tmp/x"}}, "option 'output_dir' is chosen by the platform"),
        ({"config": {"epochs": 0}}, "epochs must be at least 1"),
        ({"inputs": {"snapshot_id": "x"}}, None),
    ],
)
def test_invalid_submissions_are_refused_before_anything_is_queued(
    client, db_session, admin_headers, inputs, change, message
) -> None:  # type: ignore[no-untyped-def]
    payload = body(inputs)
    for key, value in change.items():
        payload[key] = {**payload[key], **value}
    response = client.post("/api/v1/jobs", json=payload, headers=admin_headers)
    assert response.status_code == 422
    if message:
        assert message in response.json()["detail"]


@pytest.mark.parametrize(
    ("placement", "message"),
    [
        ({"gpus": 3, "nodes": 2}, "3 GPUs do not split evenly over 2 nodes"),
        ({"gpus": 2, "nodes": 3}, "nodes in 1..gpus"),
    ],
)
def test_a_placement_the_launcher_cannot_start_is_refused(
    client, db_session, admin_headers, inputs, placement, message
) -> None:  # type: ignore[no-untyped-def]
    before = job_count(db_session)
    response = client.post("/api/v1/jobs", json=body(inputs) | placement, headers=admin_headers)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert job_count(db_session) == before


def test_a_stage_that_runs_in_one_process_is_refused_several_gpus(  # type: ignore[no-untyped-def]
    client, db_session, admin_headers, inputs
) -> None:
    payload = {
        "kind": "generate",
        "project_id": inputs["project_id"],
        "config": {},
        "inputs": {"base_model_id": inputs["base_model_id"], "snapshot_id": inputs["snapshot_id"]},
        "gpus": 2,
    }
    response = client.post("/api/v1/jobs", json=payload, headers=admin_headers)
    assert response.status_code == 422
    assert "generate runs in one process; submit it with gpus=1" in response.json()["detail"]


def test_a_missing_or_unknown_input_is_refused_with_its_name(client, admin_headers, inputs) -> None:  # type: ignore[no-untyped-def]
    payload = body(inputs)
    del payload["inputs"]["base_model_id"]
    response = client.post("/api/v1/jobs", json=payload, headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["detail"] == "stage 'reward' needs the input 'base_model_id'"
    payload = body(inputs)
    payload["inputs"]["cost_model_id"] = inputs["base_model_id"]
    response = client.post("/api/v1/jobs", json=payload, headers=admin_headers)
    assert response.status_code == 422
    assert "takes no input 'cost_model_id'" in response.json()["detail"]
    payload = body(inputs)
    payload["inputs"]["snapshot_id"] = 10**9
    response = client.post("/api/v1/jobs", json=payload, headers=admin_headers)
    assert response.status_code == 404
    assert response.json()["detail"] == f"dataset snapshot {10**9} not found"


def test_a_job_identical_to_a_succeeded_one_returns_that_job(
    client, db_session, admin_headers, inputs
) -> None:  # type: ignore[no-untyped-def]
    first = client.post("/api/v1/jobs", json=body(inputs), headers=admin_headers)
    assert first.status_code == 201
    job = first.json()
    assert job["state"] == "queued" and job["config"]["learning_rate"] == 2e-5  # defaults filled in
    assert "train_data" not in job["config"] and "output_dir" not in job["config"]
    # Not succeeded yet: a second identical submission is a new job.
    assert client.post("/api/v1/jobs", json=body(inputs), headers=admin_headers).status_code == 201
    row = db_session.get(TrainingJob, job["id"])
    row.state = JobState.succeeded
    db_session.commit()
    # A default given explicitly is the same config.
    again = client.post("/api/v1/jobs", json=body(inputs, learning_rate=2e-5), headers=admin_headers)
    assert again.status_code == 200
    assert again.json()["id"] == job["id"]
    changed = client.post("/api/v1/jobs", json=body(inputs, learning_rate=1e-3), headers=admin_headers)
    assert changed.status_code == 201


def test_cancel_a_queued_job_at_once_then_retry_it_with_a_fresh_attempt_budget(
    client, db_session, admin_headers, inputs
) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/api/v1/jobs", json=body(inputs), headers=admin_headers).json()["id"]
    cancelled = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=admin_headers)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=admin_headers)
    assert again.status_code == 409
    row = db_session.get(TrainingJob, job_id)
    row.attempt = 3
    db_session.commit()
    retried = client.post(f"/api/v1/jobs/{job_id}/retry", headers=admin_headers)
    assert retried.status_code == 200
    assert retried.json()["state"] == "queued" and retried.json()["attempt"] == 0
    assert client.post(f"/api/v1/jobs/{job_id}/retry", headers=admin_headers).status_code == 409


def test_cancelling_a_running_job_only_marks_it_for_its_worker(
    client, db_session, admin_headers, inputs
) -> None:  # type: ignore[no-untyped-def]
    from backend.services.jobs import claim_job, renew_lease

    job_id = client.post("/api/v1/jobs", json=body(inputs), headers=admin_headers).json()["id"]
    lease = claim_job(session=db_session, job_id=job_id, worker_id="w", lease_seconds=60)
    assert lease is not None
    response = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=admin_headers)
    assert response.json()["state"] == "running" and response.json()["cancel_requested"] is True
    assert renew_lease(session=db_session, lease=lease, lease_seconds=60) is False  # the worker stops


def test_list_filters_and_log_tail(client, db_session, admin_headers, inputs, settings) -> None:  # type: ignore[no-untyped-def]
    job = client.post("/api/v1/jobs", json=body(inputs), headers=admin_headers).json()
    listed = client.get(
        "/api/v1/jobs", params={"project_id": inputs["project_id"], "state": "queued"}, headers=admin_headers
    )
    assert [j["id"] for j in listed.json()] == [job["id"]]
    other_kind = {"project_id": inputs["project_id"], "kind": "ppo-lag"}
    assert client.get("/api/v1/jobs", params=other_kind, headers=admin_headers).json() == []
    job_dir = Path(settings.artifacts_dir) / "jobs" / str(job["id"])
    job_dir.mkdir(parents=True)
    (job_dir / "stderr.log").write_text("".join(f"line {i}\n" for i in range(500)))
    log = client.get(f"/api/v1/jobs/{job['id']}/log", params={"lines": 3}, headers=admin_headers).json()
    assert log["log_tail"] == "line 497\nline 498\nline 499"
    assert client.get("/api/v1/jobs/999999", headers=admin_headers).status_code == 404


def test_reviewers_and_annotators_cannot_submit(client, db_session, inputs) -> None:  # type: ignore[no-untyped-def]
    for role in (UserRole.reviewer, UserRole.annotator):
        headers = token_headers(db_session, make_user(db_session, role=role))
        assert client.post("/api/v1/jobs", json=body(inputs), headers=headers).status_code == 403
        assert client.get("/api/v1/jobs", headers=headers).status_code == 403


def test_the_typed_client_submits_cancels_retries_and_waits(
    client, db_session, admin_headers, inputs
) -> None:  # type: ignore[no-untyped-def]
    from saferlhf_client import Client
    from saferlhf_client.errors import InvalidInput

    api = Client(
        "http://testserver", token=admin_headers["Authorization"].removeprefix("Bearer "), http=client
    )
    job_inputs = {"snapshot_id": inputs["snapshot_id"], "base_model_id": inputs["base_model_id"]}
    with pytest.raises(InvalidInput, match="did you mean 'learning_rate'"):
        api.submit_job("reward", {"learnig_rate": 1.0}, inputs=job_inputs, project_id=inputs["project_id"])
    job = api.submit_job("reward", {"max_steps": 3}, inputs=job_inputs, project_id=inputs["project_id"])
    assert api.get_job(job["id"])["state"] == "queued"
    assert [j["id"] for j in api.list_jobs(project_id=inputs["project_id"])] == [job["id"]]
    assert api.cancel_job(job["id"])["state"] == "cancelled"
    seen: list[str] = []
    final = api.wait_for_job(job["id"], on_update=lambda j: seen.append(j["state"]))
    assert final["state"] == "cancelled" and seen == ["cancelled"]
    assert api.retry_job(job["id"])["state"] == "queued"
    assert api.job_log(job["id"]) == ""
