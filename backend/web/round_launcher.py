"""The admin round launcher: a form pre-filled from the project's per-round presets; launching
creates the round and launches it through the rounds services, then publishes the new jobs after
the commit, as the REST route does. Refused settings come back with every value kept and one
message next to each field (the services' own validation, plus what the form itself can tell:
a number that is not one, JSON that does not parse)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from backend.db.models import Project
from backend.domain.enums import UserRole
from backend.domain.errors import DomainError
from backend.edge.deps import DbDep, Principal, require
from backend.services.access import visible_project
from backend.services.models import list_policies
from backend.services.red_team import count_waiting_red_team
from backend.services.rounds.lifecycle import create_round, launch_round
from backend.services.rounds.settings import (
    InvalidRoundSettings,
    list_prompt_sources,
    round_presets,
    validate_round_settings,
)
from backend.web.forms import PageForm, form_text
from backend.web.pages import render, see_other
from backend.web.round_pages import publish_jobs, round_page_response

router = APIRouter(include_in_schema=False)
Admin = Annotated[Principal, Depends(require(UserRole.admin))]

INT_FIELDS = ("num_prompts", "responses_per_prompt", "max_new_tokens", "overlap_k", "seed")
FLOAT_FIELDS = (
    "temperature",
    "top_p",
    "gold_rate",
    "cost_threshold",
    "reward_shaping_nu",
    "held_out_fraction",
)
STAGE_FIELDS = ("reward_config", "cost_config", "policy_config", "evaluate_config")
# The hyperparameters people change most, as fields of their own; the rest of a stage's settings
# stay in its JSON box. An empty field leaves the key out, so the stage's own default applies.
MAIN_FIELDS: dict[str, tuple[tuple[str, str, type[int] | type[float]], ...]] = {
    "reward_config": (("learning_rate", "Learning rate", float), ("epochs", "Epochs", int)),
    "cost_config": (("learning_rate", "Learning rate", float), ("epochs", "Epochs", int)),
    "policy_config": (
        ("actor_learning_rate", "Actor learning rate", float),
        ("kl_coeff", "KL coefficient", float),
        ("max_steps", "Max steps", int),
    ),
}
ALGORITHMS = (
    ("ppo-lag", "PPO-Lag (Safe RLHF)", "Maximises reward with the cost kept under the threshold; λ adapts."),
    ("ppo", "PPO", "Reward only; the cost model is not used."),
    ("reward-shaping", "Reward shaping", "PPO on reward − ν·cost with a fixed ν."),
    ("dpo", "DPO", "Direct preference optimisation on the round's pairs; no RL."),
)


def main_name(stage: str, key: str) -> str:
    return f"{stage}__{key}"


def form_values(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as the form shows them: stage configs as indented JSON, None as empty."""
    values: dict[str, Any] = {k: ("" if v is None else v) for k, v in settings.items()}
    for stage in STAGE_FIELDS:
        config = dict(settings.get(stage) or {})
        for key, _, _ in MAIN_FIELDS.get(stage, ()):
            value = config.pop(key, None)
            values[main_name(stage, key)] = "" if value is None else value
        values[stage] = json.dumps(config, indent=2, sort_keys=True)
    values["collection_mode"] = "manual" if settings.get("collection_target_pairs") is None else "pairs"
    return values


def _launcher(
    request: Request,
    db: Session,
    principal: Principal,
    project: Project,
    form: dict[str, Any],
    errors: dict[str, str],
) -> HTMLResponse:
    context = {
        "project": project,
        "form": form,
        "errors": errors,
        "policies": list_policies(session=db, project_id=project.id),
        "sources": list_prompt_sources(session=db, project_id=project.id),
        "red_team_waiting": count_waiting_red_team(session=db, project_id=project.id),
        "algorithms": ALGORITHMS,
        "main_fields": {
            stage: [(main_name(stage, key), label) for key, label, _ in fields]
            for stage, fields in MAIN_FIELDS.items()
        },
    }
    return render(request, "rounds/new.html", principal, context, status=422 if errors else 200)


@router.get("/admin/projects/{project_id}/rounds/new", response_class=HTMLResponse)
def new_round(project_id: int, request: Request, db: DbDep, principal: Admin) -> HTMLResponse:
    project = visible_project(db, user=principal.user, project_id=project_id)
    presets = round_presets(session=db, project_id=project.id)
    policies = list_policies(session=db, project_id=project.id)
    if presets.get("base_policy_id") is None and policies:
        # Round 1 has no previous policy: offer the project's first registered policy, which is
        # the SFT model the loop starts from; the admin can still pick another.
        first = [m for m in policies if m.project_id == project.id] or policies
        presets["base_policy_id"] = first[-1].id
    return _launcher(request, db, principal, project, form_values(presets), {})


def _number(raw: str, cast: type[int] | type[float], errors: dict[str, str], key: str) -> Any:
    if not raw:
        errors[key] = "enter a number"
        return None
    try:
        return cast(raw)
    except ValueError:
        errors[key] = "enter a whole number" if cast is int else "enter a number"
        return None


def _stage_config(raw: str, errors: dict[str, str], key: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        errors[key] = f"not valid JSON ({exc.msg}, line {exc.lineno})"
        return None
    if not isinstance(value, dict):
        errors[key] = 'must be a JSON object such as {"learning_rate": 1e-5}'
        return None
    return value


def parse_launcher_form(form: FormData) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(what the admin typed, for re-display; the settings data; the form's own field errors)."""
    raw: dict[str, Any] = {k: form_text(form, k).strip() for k in (*INT_FIELDS, *FLOAT_FIELDS)}
    raw.update({k: form_text(form, k) for k in STAGE_FIELDS})
    raw.update(
        base_policy_id=form_text(form, "base_policy_id"),
        prompt_sources=[v for v in form.getlist("prompt_sources") if isinstance(v, str)],
        algorithm=form_text(form, "algorithm"),
        collection_mode=form_text(form, "collection_mode", "pairs"),
        collection_target_pairs=form_text(form, "collection_target_pairs").strip(),
    )
    errors: dict[str, str] = {}
    data: dict[str, Any] = {
        "prompt_sources": raw["prompt_sources"],
        "algorithm": raw["algorithm"] or "ppo-lag",
    }
    for key in INT_FIELDS:
        data[key] = _number(raw[key], int, errors, key)
    for key in FLOAT_FIELDS:
        data[key] = _number(raw[key], float, errors, key)
    for stage in STAGE_FIELDS:
        config = _stage_config(raw[stage], errors, stage)
        for key, _, cast in MAIN_FIELDS.get(stage, ()):
            raw[main_name(stage, key)] = typed = form_text(form, main_name(stage, key)).strip()
            value = _number(typed, cast, errors, main_name(stage, key)) if typed else None
            if config is not None and value is not None:
                config[key] = value
        data[stage] = config
    data["base_policy_id"] = _number(raw["base_policy_id"], int, {}, "") if raw["base_policy_id"] else None
    if raw["collection_mode"] == "manual":
        data["collection_target_pairs"] = None
    else:
        data["collection_target_pairs"] = _number(
            raw["collection_target_pairs"], int, errors, "collection_target_pairs"
        )
    return raw, {k: v for k, v in data.items() if k not in errors}, errors


@router.post("/admin/projects/{project_id}/rounds")
def launch_from_form(
    project_id: int, request: Request, form: PageForm, db: DbDep, principal: Admin
) -> Response:
    project = visible_project(db, user=principal.user, project_id=project_id)
    raw, data, errors = parse_launcher_form(form)
    try:
        settings = validate_round_settings(session=db, project_id=project.id, data=data)
    except InvalidRoundSettings as refused:
        # The form's own errors (a number that is not one) come first: they are what the admin typed.
        errors = {**refused.field_errors, **errors}
    if errors:
        db.rollback()
        return _launcher(request, db, principal, project, raw, errors)
    round_ = create_round(session=db, caller=principal.caller, project_id=project.id, settings=settings)
    if form_text(form, "launch", "1") == "0":
        return see_other(f"/admin/rounds/{round_.id}", "round_saved")
    try:
        job_ids = launch_round(session=db, round_id=round_.id)
    except DomainError as error:
        # The draft is kept: the round page says why, and its Launch button tries again.
        db.rollback()
        return round_page_response(
            request, db, principal, round_.id, errors=[error.detail], status=error.status_code
        )
    publish_jobs(db, job_ids)
    return see_other(f"/admin/rounds/{round_.id}", "round_launched")
