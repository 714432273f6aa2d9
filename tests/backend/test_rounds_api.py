"""Rounds over REST: presets, the launcher's per-field refusals (422 with `errors`), create and
launch, the round as the API shows it, cancel, and the report as JSON and CSV."""

from __future__ import annotations

import pytest

from backend.db.models import Project
from backend.domain.enums import ComparisonStatus
from tests.factories.annotation import make_comparisons, token_headers
from tests.support.rounds import make_world, round_settings_env  # noqa: F401

pytestmark = pytest.mark.usefixtures("round_settings_env")


def test_the_launcher_refuses_invalid_settings_with_one_message_per_field(
    client, db_session, settings
) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_session, settings)
    headers = token_headers(db_session, world.admin)
    bad = {
        "base_policy_id": 987654,
        "prompt_sources": ["nowhere"],
        "num_prompts": 0,
        "responses_per_prompt": 7,
        "top_p": 0,
        "algorithm": "sgd",
        "policy_config": {"no_such_option": 1},
        "launch_now": True,
    }
    response = client.post(
        f"/api/v1/projects/{world.project_id}/rounds", json={"settings": bad}, headers=headers
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_round_settings" and body["detail"]
    errors = body["errors"]
    assert set(errors) >= {"num_prompts", "responses_per_prompt", "top_p", "algorithm", "launch_now"}
    assert "6" in errors["responses_per_prompt"]
    # The domain checks and the stage's own validation, once the form itself parses.
    fixed = {"base_policy_id": 987654, "prompt_sources": ["nowhere"], "policy_config": {"no_such_option": 1}}
    body = client.post(
        f"/api/v1/projects/{world.project_id}/rounds", json={"settings": fixed}, headers=headers
    ).json()
    assert set(body["errors"]) == {"base_policy_id", "prompt_sources", "policy_config"}
    assert "not in the registry" in body["errors"]["base_policy_id"]
    assert "'nowhere'" in body["errors"]["prompt_sources"]
    assert "no_such_option" in body["errors"]["policy_config"]
    missing = client.post(
        f"/api/v1/projects/{world.project_id}/rounds",
        json={"settings": {"prompt_sources": ["seed-set"]}},
        headers=headers,
    ).json()
    assert set(missing["errors"]) == {"base_policy_id"} and "SFT" in missing["errors"]["base_policy_id"]
    listed = client.get(f"/api/v1/projects/{world.project_id}/rounds", headers=headers).json()
    assert listed == []  # nothing was created


def test_a_round_is_created_from_the_presets_launched_read_and_cancelled_over_rest(
    client, db_session, settings
) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_session, settings)
    headers = token_headers(db_session, world.admin)
    presets = client.get(f"/api/v1/projects/{world.project_id}/rounds/presets", headers=headers).json()
    assert presets["algorithm"] == "ppo-lag" and presets["prompt_sources"] == ["seed-set"]
    assert presets["base_policy_id"] is None  # round 1: the admin chooses the SFT model
    settings_ = presets | {
        "base_policy_id": world.base_policy_id,
        "num_prompts": 3,
        "responses_per_prompt": 2,
    }
    response = client.post(
        f"/api/v1/projects/{world.project_id}/rounds", json={"settings": settings_}, headers=headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["number"] == 1 and created["state"] == "generating"
    assert [j["kind"] for j in created["jobs"]] == ["generate", "generate"]
    assert created["stage"].startswith("generating: generate queued")
    assert created["models"]["base_policy_id"] == world.base_policy_id
    assert "_run" not in created["settings"]
    read = client.get(f"/api/v1/rounds/{created['id']}", headers=headers).json()
    assert read["id"] == created["id"] and read["url"].endswith(f"/admin/rounds/{created['id']}")
    assert client.post(f"/api/v1/rounds/{created['id']}/launch", headers=headers).status_code == 409
    assert client.post(f"/api/v1/rounds/{created['id']}/retry", headers=headers).status_code == 409
    assert client.post(f"/api/v1/rounds/{created['id']}/close-collection", headers=headers).status_code == 409
    cancelled = client.post(f"/api/v1/rounds/{created['id']}/cancel", headers=headers).json()
    assert cancelled["state"] == "cancelled" and {j["state"] for j in cancelled["jobs"]} == {"cancelled"}
    report = client.get(f"/api/v1/projects/{world.project_id}/rounds/report", headers=headers).json()
    assert [(r["round"], r["state"]) for r in report] == [(1, "cancelled")]
    csv = client.get(f"/api/v1/projects/{world.project_id}/rounds/report.csv", headers=headers)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[1].startswith("1,cancelled,")


def test_a_draft_round_launches_later_and_the_next_presets_follow_the_last_round(
    client, db_session, settings
) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_session, settings)
    headers = token_headers(db_session, world.admin)
    body = {
        "settings": {"base_policy_id": world.base_policy_id, "prompt_sources": ["seed-set"]},
        "launch": False,
    }
    draft = client.post(f"/api/v1/projects/{world.project_id}/rounds", json=body, headers=headers).json()
    assert draft["state"] == "draft" and draft["jobs"] == []
    launched = client.post(f"/api/v1/rounds/{draft['id']}/launch", headers=headers).json()
    assert launched["state"] == "generating" and len(launched["jobs"]) == 3
    presets = client.get(f"/api/v1/projects/{world.project_id}/rounds/presets", headers=headers).json()
    assert presets["seed"] == 2  # the next round samples differently
    assert presets["policy_config"] == {"preset": "beaver-v2"}  # the paper's second-round PPO-Lag


def test_the_presets_of_every_algorithm_pass_its_stages_validation(client, db_session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_session, settings)
    headers = token_headers(db_session, world.admin)
    for algorithm in ("ppo-lag", "ppo", "reward-shaping", "dpo"):
        presets = client.get(
            f"/api/v1/projects/{world.project_id}/rounds/presets",
            params={"algorithm": algorithm},
            headers=headers,
        ).json()
        assert presets["algorithm"] == algorithm
        body = {"settings": presets | {"base_policy_id": world.base_policy_id}, "launch": False}
        response = client.post(f"/api/v1/projects/{world.project_id}/rounds", json=body, headers=headers)
        assert response.status_code == 201, (algorithm, response.json())


def test_a_gold_rate_without_gold_items_is_refused_on_that_field_and_accepted_once_there_is_one(
    client, db_session, settings
) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_session, settings)
    headers = token_headers(db_session, world.admin)
    wanted = {
        "base_policy_id": world.base_policy_id,
        "prompt_sources": ["seed-set"],
        "num_prompts": 2,
        "responses_per_prompt": 2,
        "gold_rate": 0.2,
    }
    url = f"/api/v1/projects/{world.project_id}/rounds"
    refused = client.post(url, json={"settings": wanted}, headers=headers)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["code"] == "invalid_round_settings" and set(body["errors"]) == {"gold_rate"}
    assert body["errors"]["gold_rate"].startswith("the project has no gold items: mark reviewed comparisons")
    assert body["errors"]["gold_rate"].endswith("or set 0") and "gold_rate" in body["detail"]
    assert client.get(url, headers=headers).json() == []  # nothing was created
    # A retired gold item is never served, so it does not count.
    project = db_session.get(Project, world.project_id)
    (retired,) = make_comparisons(db_session, project, 1, gold_labels={"helpfulness": "a"})
    retired.status = ComparisonStatus.retired
    db_session.commit()
    assert client.post(url, json={"settings": wanted}, headers=headers).status_code == 422
    make_comparisons(db_session, project, 1, gold_labels={"helpfulness": "a"})
    created = client.post(url, json={"settings": wanted}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["settings"]["gold_rate"] == 0.2
