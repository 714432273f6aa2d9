"""The jobs of each stage of a round, built from its settings: kind, config and inputs (by id).

Every config goes through the stage's own validation at launch (stage_config_errors), so a round
never fails later on an option the stage refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.domain.enums import JobKind
from backend.domain.errors import InvalidInput
from backend.services.jobs_submit import PROMPTS_INPUT, _validated_config
from backend.services.rounds.settings import RoundSettings

SAMPLING_KEYS = ("temperature", "top_p", "max_new_tokens")
POLICY_KINDS: dict[str, JobKind] = {
    "ppo-lag": JobKind.ppo_lag,
    "ppo": JobKind.ppo,
    "reward-shaping": JobKind.reward_shaping,
    "dpo": JobKind.dpo,
}
# Placeholder ids for validation only: the stage's check needs to see every input it requires.
_FAKE_INPUTS: dict[str, Any] = {
    "base_model_id": 1,
    "reward_model_id": 1,
    "cost_model_id": 1,
    "red_model_id": 1,
    "blue_model_id": 1,
    "snapshot_id": 1,
    PROMPTS_INPUT: "prompts/" + "0" * 64,
}


@dataclass(frozen=True)
class JobSpec:
    kind: JobKind
    config: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)


def _sampling(settings: RoundSettings) -> dict[str, Any]:
    return {key: getattr(settings, key) for key in SAMPLING_KEYS}


def _truth(toy: bool) -> dict[str, Any]:
    return {"ground_truth": "toyworld"} if toy else {}


def generate_specs(settings: RoundSettings, *, policy_id: int, prompts_key: str, toy: bool) -> list[JobSpec]:
    """One generate job per response slot, each from its own seed: the generate stage samples one
    answer per prompt (and deduplicates prompts), so k answers need k samplings."""
    base = {
        **_sampling(settings),
        **_truth(toy),
        "per_device_eval_batch_size": settings.evaluate_config.get("per_device_eval_batch_size", 16),
    }
    for key in ("max_prompt_length", "num_threads"):
        if key in settings.policy_config:
            base[key] = settings.policy_config[key]
    return [
        JobSpec(
            JobKind.generate,
            {**base, "seed": settings.seed * 100 + slot},
            {"base_model_id": policy_id, PROMPTS_INPUT: prompts_key},
        )
        for slot in range(settings.responses_per_prompt)
    ]


def model_specs(
    settings: RoundSettings, *, base_model_id: int, snapshot_id: int, eval_snapshot_id: int | None = None
) -> list[JobSpec]:
    """The reward and cost models, both from the same base model on the same snapshot, scored on
    its held-out part."""
    inputs = {"base_model_id": base_model_id, "snapshot_id": snapshot_id}
    if eval_snapshot_id is not None:
        inputs["eval_snapshot_id"] = eval_snapshot_id
    return [
        JobSpec(JobKind.reward, {"seed": settings.seed, **settings.reward_config}, dict(inputs)),
        JobSpec(JobKind.cost, {"seed": settings.seed, **settings.cost_config}, dict(inputs)),
    ]


def policy_spec(
    settings: RoundSettings,
    *,
    base_policy_id: int,
    reward_model_id: int,
    cost_model_id: int,
    prompts_key: str,
    snapshot_id: int,
    toy: bool,
) -> JobSpec:
    kind = POLICY_KINDS[settings.algorithm]
    config: dict[str, Any] = {"seed": settings.seed, **settings.policy_config}
    if kind == JobKind.dpo:  # DPO learns from the preference pairs directly
        return JobSpec(kind, config, {"base_model_id": base_policy_id, "snapshot_id": snapshot_id})
    config = {**_sampling(settings), **_truth(toy), **config}
    inputs: dict[str, Any] = {
        "base_model_id": base_policy_id,
        "reward_model_id": reward_model_id,
        PROMPTS_INPUT: prompts_key,
    }
    if kind == JobKind.ppo_lag:
        config["threshold"] = settings.cost_threshold
    if kind == JobKind.reward_shaping:
        config["nu"] = settings.reward_shaping_nu
    if kind != JobKind.ppo:
        inputs["cost_model_id"] = cost_model_id
    return JobSpec(kind, config, inputs)


def evaluate_spec(
    settings: RoundSettings,
    *,
    previous_policy_id: int,
    policy_id: int,
    reward_model_id: int,
    cost_model_id: int,
    prompts_key: str,
    toy: bool,
) -> JobSpec:
    """The arena on held-out prompts: the previous policy (red) against this round's (blue)."""
    config = {
        **_sampling(settings),
        **_truth(toy),
        "seed": settings.seed,
        "red_name": "previous",
        "blue_name": "new",
        **settings.evaluate_config,
    }
    inputs = {
        "red_model_id": previous_policy_id,
        "blue_model_id": policy_id,
        "reward_model_id": reward_model_id,
        "cost_model_id": cost_model_id,
        PROMPTS_INPUT: prompts_key,
    }
    return JobSpec(JobKind.evaluate, config, inputs)


def _fake_specs(settings: RoundSettings, toy: bool) -> dict[str, JobSpec]:
    key = _FAKE_INPUTS[PROMPTS_INPUT]
    reward, cost = model_specs(settings, base_model_id=1, snapshot_id=1)
    return {
        "generate": generate_specs(settings, policy_id=1, prompts_key=key, toy=toy)[0],
        "reward_config": reward,
        "cost_config": cost,
        "policy_config": policy_spec(
            settings,
            base_policy_id=1,
            reward_model_id=1,
            cost_model_id=1,
            prompts_key=key,
            snapshot_id=1,
            toy=toy,
        ),
        "evaluate_config": evaluate_spec(
            settings,
            previous_policy_id=1,
            policy_id=1,
            reward_model_id=1,
            cost_model_id=1,
            prompts_key=key,
            toy=toy,
        ),
    }


def stage_config_errors(settings: RoundSettings, *, toy: bool) -> dict[str, str]:
    """Field -> the stage's own message, for every stage config it refuses. The sampling settings
    are checked through the generate stage."""
    errors: dict[str, str] = {}
    for name, spec in _fake_specs(settings, toy).items():
        try:
            _validated_config(spec.kind, spec.config, spec.inputs)
        except InvalidInput as exc:
            field_name = "temperature" if name == "generate" else name
            errors[field_name] = f"{spec.kind.value}: {exc.detail}"
    return errors
