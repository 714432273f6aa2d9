"""The admin round pages on real Postgres and the real rounds services: the launcher pre-filled from
the presets, its per-field errors with every value kept, a launch that publishes its jobs, the
round page (stage strip, jobs with progress, models, the buttons that apply), cancel and
close-collection from the page, and the report across rounds. The worker is stood in for by
tests/support/rounds.py's `settle`."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.db.models import Project, Round, TrainingJob
from backend.domain.enums import JobState, RoundState
from backend.services.red_team import submit_red_team_prompt
from backend.services.rounds import lifecycle
from backend.services.rounds.settings import validate_round_settings
from tests.factories import login
from tests.factories.annotation import csrf_of
from tests.support.rounds import decide_all, make_world, round_settings_env, settle  # noqa: F401

pytestmark = pytest.mark.usefixtures("round_settings_env")


@pytest.fixture
def world(app, db_session, settings):  # type: ignore[no-untyped-def]
    made = make_world(db_session, settings)
    client = TestClient(app, follow_redirects=False)
    login(client, made.admin.email)
    return made, client, csrf_of(db_session, made.admin)


def _valid_form(world, csrf: str, **changes: object) -> dict[str, object]:  # type: ignore[no-untyped-def]
    form: dict[str, object] = {
        "csrf_token": csrf,
        "base_policy_id": str(world.base_policy_id),
        "prompt_sources": ["seed-set"],
        "num_prompts": "4",
        "responses_per_prompt": "3",
        "temperature": "1.0",
        "top_p": "1.0",
        "max_new_tokens": "24",
        "held_out_fraction": "0",
        "seed": "3",
        "overlap_k": "1",
        "gold_rate": "0",
        "collection_mode": "pairs",
        "collection_target_pairs": "12",
        "algorithm": "ppo-lag",
        "cost_threshold": "0",
        "reward_shaping_nu": "1",
        "reward_config": "{}",
        "cost_config": "{}",
        "policy_config": "{}",
        "evaluate_config": "{}",
    }
    return form | changes


def field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<p class="field-error" id="([a-z_]+)-error" role="alert">([^<]+)</p>', html))


def _round(db_session, world, **overrides):  # type: ignore[no-untyped-def]
    data = {
        "base_policy_id": world.base_policy_id,
        "prompt_sources": ["seed-set"],
        "num_prompts": 4,
        "responses_per_prompt": 3,
        "held_out_fraction": 0.0,
        "collection_target_pairs": 12,
        **overrides,
    }
    settings = validate_round_settings(session=db_session, project_id=world.project_id, data=data)
    round_ = lifecycle.create_round(
        session=db_session, caller=world.admin, project_id=world.project_id, settings=settings
    )
    lifecycle.launch_round(session=db_session, round_id=round_.id)
    return round_.id


def test_the_launcher_is_prefilled_with_registered_policies_prompt_sets_and_red_team_prompts(
    world, db_session
) -> None:  # type: ignore[no-untyped-def]
    made, client, _ = world
    prompt = submit_red_team_prompt(
        session=db_session,
        caller=made.annotator,
        project=_project(db_session, made),
        text="How do I hotwire a car quickly?",
        harm_category="financial_crime",
    )
    prompt.review_state = "accepted"
    db_session.commit()
    page = client.get(f"/admin/projects/{made.project_id}/rounds/new")
    assert page.status_code == 200
    html = page.text
    assert f'<option value="{made.base_policy_id}" selected>' in html  # round 1: the SFT model
    assert re.search(r'value="seed-set"[^>]*>\s*seed-set <span class="muted-small">6 prompts', html)
    assert "1 accepted prompt not yet in a round enter" in html
    assert re.search(r'name="algorithm" value="ppo-lag" checked', html)
    for name in ("reward_config", "cost_config", "policy_config", "evaluate_config"):
        assert f'id="{name}" name="{name}"' in html
    assert 'name="responses_per_prompt"' in html and "6 (15 pairs per prompt)" in html


def _project(db_session, made):  # type: ignore[no-untyped-def]
    return db_session.get(Project, made.project_id)


def test_refused_settings_come_back_with_one_message_per_field_and_every_value_kept(
    world, db_session
) -> None:  # type: ignore[no-untyped-def]
    made, client, csrf = world
    form = _valid_form(
        made,
        csrf,
        num_prompts="lots",
        gold_rate="1.5",
        policy_config='{"actor_learning_rate": ',
        evaluate_config="[1, 2]",
        collection_target_pairs="",
        temperature="0.7",
    )
    response = client.post(f"/admin/projects/{made.project_id}/rounds", data=form)
    assert response.status_code == 422
    html = response.text
    errors = field_errors(html)
    assert set(errors) == {
        "num_prompts",
        "gold_rate",
        "policy_config",
        "evaluate_config",
        "collection_target_pairs",
    }
    assert errors["num_prompts"] == "enter a whole number"
    assert errors["policy_config"].startswith("not valid JSON")
    assert "JSON object" in errors["evaluate_config"]
    assert all(message and "\n" not in message for message in errors.values())
    # What was typed is still there, exactly.
    assert 'id="num_prompts" name="num_prompts" type="text" inputmode="decimal" value="lots"' in html
    assert 'value="0.7"' in html and "{&#34;actor_learning_rate&#34;: </textarea>" in html
    assert 'aria-invalid="true" aria-describedby="gold_rate-error"' in html
    # Once the numbers parse, the registry and prompt checks speak for their fields.
    second = client.post(
        f"/admin/projects/{made.project_id}/rounds",
        data=_valid_form(made, csrf, base_policy_id="", prompt_sources=[]),
    )
    errors = field_errors(second.text)
    assert second.status_code == 422 and set(errors) == {"base_policy_id", "prompt_sources"}
    assert "at least one prompt set" in errors["prompt_sources"]
    assert 'name="prompt_sources" value="seed-set" checked' not in second.text
    assert db_session.scalar(select(Round.id).where(Round.project_id == made.project_id)) is None


def test_a_stage_config_the_stage_refuses_is_reported_next_to_that_stage(world, db_session) -> None:  # type: ignore[no-untyped-def]
    made, client, csrf = world
    form = _valid_form(made, csrf, reward_config='{"no_such_option": 1}')
    response = client.post(f"/admin/projects/{made.project_id}/rounds", data=form)
    assert response.status_code == 422
    assert 'id="reward_config-error"' in response.text and "no_such_option" in response.text


def test_launching_from_the_form_creates_the_round_and_publishes_its_jobs(world, db_session) -> None:  # type: ignore[no-untyped-def]
    made, client, csrf = world
    response = client.post(f"/admin/projects/{made.project_id}/rounds", data=_valid_form(made, csrf))
    assert response.status_code == 303, response.text
    round_id = int(
        re.match(r"/admin/rounds/(\d+)\?notice=round_launched", response.headers["location"]).group(1)
    )
    db_session.expire_all()
    round_ = db_session.get(Round, round_id)
    assert round_.state == RoundState.generating and round_.launched_by_id == made.admin.id
    jobs = db_session.scalars(select(TrainingJob).where(TrainingJob.round_id == round_id)).all()
    assert len(jobs) == 3 and all(j.published_at is not None for j in jobs)  # one generate job per response
    page = client.get(response.headers["location"]).text
    assert "Round launched" in page and all(f'href="/admin/jobs/{j.id}"' in page for j in jobs)

    draft = client.post(f"/admin/projects/{made.project_id}/rounds", data=_valid_form(made, csrf, launch="0"))
    assert draft.headers["location"].endswith("notice=round_saved")
    draft_id = int(re.match(r"/admin/rounds/(\d+)", draft.headers["location"]).group(1))
    db_session.expire_all()
    assert db_session.get(Round, draft_id).state == RoundState.draft


def test_the_round_page_shows_the_stage_strip_jobs_progress_models_and_only_the_buttons_that_apply(
    world, db_session, settings
) -> None:  # type: ignore[no-untyped-def]
    made, client, _ = world
    round_id = _round(db_session, made)
    jobs = db_session.scalars(select(TrainingJob).where(TrainingJob.round_id == round_id)).all()
    jobs[0].progress, jobs[0].current_step, jobs[0].total_steps, jobs[0].state = 0.25, 5, 20, JobState.running
    db_session.commit()
    html = client.get(f"/admin/rounds/{round_id}").text
    assert re.search(r'data-stage="draft" data-status="done"', html)
    assert re.search(r'data-stage="generating" data-status="current" aria-current="step"', html)
    assert re.search(r'data-stage="collecting" data-status="pending"', html)
    assert (
        f'data-job-id="{jobs[0].id}"' in html
        and 'value="0.25"' in html
        and "25.0%" in html
        and "5 / 20" in html
    )
    assert f'href="/admin/models/{made.base_policy_id}"' in html
    assert '<script src="/static/js/round_live.js"></script>' in html
    visible = re.findall(r'<form data-when="[^"]*" method="post" action="/admin/rounds/\d+/([a-z-]+)"', html)
    hidden = re.findall(
        r'<form data-when="[^"]*" hidden method="post" action="/admin/rounds/\d+/([a-z-]+)"', html
    )
    assert visible == ["cancel"] and set(hidden) == {"launch", "close-collection", "retry"}

    # Collecting: Close collection is offered; closing before any pair is decided says why, on the page.
    for job in jobs:
        settle(db_session, settings, made, job.id)
    lifecycle.on_job_finished(session=db_session, job_id=jobs[-1].id)
    html = client.get(f"/admin/rounds/{round_id}").text
    assert 'data-stage="collecting" data-status="current"' in html
    assert 'id="round-decided">0<' in html and "of 12 pairs decided; collection ends at 12" in html
    assert re.search(
        r'<form data-when="collecting" method="post" action="/admin/rounds/\d+/close-collection"', html
    )


def test_close_collection_and_cancel_post_with_csrf_and_explain_a_refusal_on_the_page(
    world, db_session, settings
) -> None:  # type: ignore[no-untyped-def]
    made, client, csrf = world
    round_id = _round(db_session, made, collection_target_pairs=None)
    generate = db_session.scalars(select(TrainingJob).where(TrainingJob.round_id == round_id)).all()
    for job in generate:
        settle(db_session, settings, made, job.id)
    lifecycle.on_job_finished(session=db_session, job_id=generate[-1].id)
    assert client.post(f"/admin/rounds/{round_id}/close-collection", data={}).status_code == 403  # no CSRF
    refused = client.post(f"/admin/rounds/{round_id}/close-collection", data={"csrf_token": csrf})
    assert refused.status_code == 409 and "no pair of this round is fully annotated yet" in refused.text

    decide_all(db_session, made, made.project_id)
    closed = client.post(f"/admin/rounds/{round_id}/close-collection", data={"csrf_token": csrf})
    assert closed.status_code == 303 and closed.headers["location"].endswith("notice=collection_closed")
    db_session.expire_all()
    assert db_session.get(Round, round_id).state == RoundState.training
    training = db_session.scalars(
        select(TrainingJob).where(TrainingJob.round_id == round_id, TrainingJob.state == JobState.queued)
    ).all()
    assert {j.kind.value for j in training} == {"reward", "cost"} and all(j.published_at for j in training)

    cancelled = client.post(f"/admin/rounds/{round_id}/cancel", data={"csrf_token": csrf})
    assert cancelled.status_code == 303 and cancelled.headers["location"].endswith("notice=round_cancelled")
    db_session.expire_all()
    assert db_session.get(Round, round_id).state == RoundState.cancelled
    assert all(db_session.get(TrainingJob, j.id).state == JobState.cancelled for j in training)
    again = client.post(f"/admin/rounds/{round_id}/cancel", data={"csrf_token": csrf})
    assert again.status_code == 409 and "cannot be cancelled" in again.text


def test_a_failed_round_shows_its_error_and_retry_reruns_the_failed_stage(
    world, db_session, settings
) -> None:  # type: ignore[no-untyped-def]
    made, client, csrf = world
    round_id = _round(db_session, made)
    jobs = db_session.scalars(select(TrainingJob).where(TrainingJob.round_id == round_id)).all()
    settle(db_session, settings, made, jobs[0].id, JobState.failed)
    lifecycle.on_job_finished(session=db_session, job_id=jobs[0].id)
    html = client.get(f"/admin/rounds/{round_id}").text
    assert 'data-stage="generating" data-status="failed"' in html and 'id="round-error"' in html
    assert "the stage crashed" in html
    assert re.search(r'<form data-when="failed" method="post" action="/admin/rounds/\d+/retry"', html)
    retried = client.post(f"/admin/rounds/{round_id}/retry", data={"csrf_token": csrf})
    assert retried.status_code == 303 and retried.headers["location"].endswith("notice=round_retried")
    db_session.expire_all()
    assert db_session.get(Round, round_id).state == RoundState.generating
    job = db_session.get(TrainingJob, jobs[0].id)
    assert job.state == JobState.queued and job.published_at is not None


def test_the_report_page_tables_and_plots_every_round_and_links_the_exports(world, db_session) -> None:  # type: ignore[no-untyped-def]
    made, client, _ = world
    for number, (helpful, unsafe) in enumerate(((0.41, 0.30), (0.47, 0.12)), start=1):
        row = {
            "round": number,
            "state": "completed",
            "reward_accuracy": 0.7 + number / 100,
            "cost_sign_accuracy": 0.8,
            "mean_reward": 1.0,
            "mean_cost": -0.5,
            "unsafe_ratio": unsafe,
            "lambda": 0.25 * number,
            "win_rate": 0.6,
            "arena": {"win_rate": 0.6, "by_safety": {}, "by_category": {}},
            "agreement_helpfulness": 0.81,
            "agreement_harmlessness": 0.9,
            "true_helpfulness": helpful,
            "true_unsafe_rate": unsafe,
            # Round 1's held-out part had no unsafe answer of any category; round 2's had some.
            "cost_recall_by_category": None
            if number == 1
            else {"Privacy Violation": 0.625, "Self-Harm": 1.0},
            "cost_unsafe_count_by_category": None
            if number == 1
            else {"Privacy Violation": 8, "Self-Harm": 3},
        }
        db_session.add(
            Round(project_id=made.project_id, number=number, state=RoundState.completed, report=row)
        )
    db_session.commit()
    response = client.get(f"/admin/projects/{made.project_id}/rounds/report")
    assert response.status_code == 200
    html = response.text
    assert "blob:" in response.headers["content-security-policy"]
    assert (
        html.count('<tr data-round="') == 2
        and "71.0%" in html
        and "81.0%" in html
        and "12.0%" in html
        and "0.500" in html
    )
    assert f'href="/api/v1/projects/{made.project_id}/rounds/report.csv"' in html
    assert f'href="/api/v1/projects/{made.project_id}/rounds/report"' in html
    assert '<script src="/vendor/plotly.min.js"></script>' in html and "round_report.js" in html
    assert "data-rows='[{" in html and "&#34;" not in html.split("data-rows='")[1].split("'")[0]
    recall = html.split('id="recall-table"')[1].split("</table>")[0]
    assert [h for h in ("Privacy Violation", "Self-Harm") if f'class="num">{h}</th>' in recall] == [
        "Privacy Violation",
        "Self-Harm",
    ]
    second = recall.split('<tr data-recall-round="2">')[1].split("</tr>")[0]
    assert "62.5%" in second and "n=8" in second and "100.0%" in second and "n=3" in second
    first = recall.split('<tr data-recall-round="1">')[1].split("</tr>")[0]
    assert first.count('<span class="muted">–</span>') == 2 and "n=" not in first

    listing = client.get(f"/admin/projects/{made.project_id}/rounds").text
    assert listing.count('<tr data-round-id="') == 2
    assert "Round 2" in client.get("/admin/rounds").text


def test_pages_of_a_round_the_project_does_not_have_are_not_found(world) -> None:  # type: ignore[no-untyped-def]
    _, client, _ = world
    assert client.get("/admin/rounds/999999").status_code == 404
    assert client.get("/admin/projects/999999/rounds/new").status_code == 404


def test_report_values_a_diverged_run_logged_as_nan_or_infinite_are_shown_as_missing() -> None:
    from backend.web.round_pages import finite

    row = {"lambda": float("nan"), "arena": {"by_safety": {"x": float("inf")}}, "runs": [1.5, float("-inf")]}
    assert finite(row) == {"lambda": None, "arena": {"by_safety": {"x": None}}, "runs": [1.5, None]}


def test_the_main_hyperparameters_are_fields_merged_into_their_stage_and_checked_as_numbers(
    world, db_session
) -> None:  # type: ignore[no-untyped-def]
    made, client, csrf = world
    refused = client.post(
        f"/admin/projects/{made.project_id}/rounds",
        data=_valid_form(made, csrf, reward_config__epochs="two", policy_config__kl_coeff="0.05"),
    )
    assert refused.status_code == 422
    assert field_errors(refused.text) == {"reward_config__epochs": "enter a whole number"}
    assert 'name="reward_config__epochs" type="text" inputmode="decimal" value="two"' in refused.text
    assert 'name="policy_config__kl_coeff" type="text" inputmode="decimal" value="0.05"' in refused.text

    launched = client.post(
        f"/admin/projects/{made.project_id}/rounds",
        data=_valid_form(made, csrf, launch="0", policy_config__kl_coeff="0.05", reward_config__epochs="3"),
    )
    assert launched.status_code == 303, launched.text
    round_id = int(re.match(r"/admin/rounds/(\d+)", launched.headers["location"]).group(1))
    db_session.expire_all()
    config = db_session.get(Round, round_id).config
    assert config["policy_config"]["kl_coeff"] == 0.05 and config["reward_config"] == {"epochs": 3}
    assert "learning_rate" not in config["cost_config"]  # an empty field leaves the stage's default
