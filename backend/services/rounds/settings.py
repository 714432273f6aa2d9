"""A round's settings: the launcher's form, its per-round presets, and validation with one clear
message per field (the stage configs by the stages' own validation, as submit_job does)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.db.models import ModelArtifact, Prompt, Round
from backend.domain.enums import ArtifactKind, RoundState
from backend.domain.errors import InvalidInput
from backend.services.rounds.gold import gold_item_count

Algorithm = Literal["ppo-lag", "ppo", "reward-shaping", "dpo"]
TOYWORLD_SOURCE = "toyworld"  # a project whose prompts come from the toy world (docs/design/toyworld.md)
HELDOUT_SUFFIX = "-heldout"  # prompts of source "<s>-heldout" are the held-out set of source <s>


class InvalidRoundSettings(InvalidInput):
    """The launcher refused the settings; `field_errors` holds one message per field."""

    code = "invalid_round_settings"

    def __init__(self, field_errors: dict[str, str]) -> None:
        first = next(iter(field_errors.items()))
        more = f" (and {len(field_errors) - 1} more)" if len(field_errors) > 1 else ""
        super().__init__(f"{first[0]}: {first[1]}{more}")
        self.field_errors = field_errors


class RoundSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_policy_id: int | None = None
    prompt_sources: list[str] = Field(default_factory=list)
    num_prompts: int = Field(200, ge=1, le=100_000)
    responses_per_prompt: int = Field(3, ge=2, le=6)
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(24, ge=1, le=4096)
    overlap_k: int = Field(1, ge=1, le=20)
    gold_rate: float = Field(0.0, ge=0.0, le=1.0)
    collection_target_pairs: int | None = Field(None, ge=1)
    algorithm: Algorithm = "ppo-lag"
    cost_threshold: float = 0.0
    reward_shaping_nu: float = Field(1.0, ge=0.0)
    reward_config: dict[str, Any] = Field(default_factory=dict)
    cost_config: dict[str, Any] = Field(default_factory=dict)
    policy_config: dict[str, Any] = Field(default_factory=dict)
    evaluate_config: dict[str, Any] = Field(default_factory=dict)
    held_out_fraction: float = Field(0.1, ge=0.0, le=0.9)
    seed: int = Field(0, ge=0)


# Tiny-model hyperparameters (docs/policy_training.md, "The paper's result in miniature"): the
# toy world's Llama has 0.66M parameters, so the 7B learning rates would not move it.
TOY_SUPERVISED = {
    "epochs": 2,
    "per_device_train_batch_size": 32,
    "learning_rate": 1e-3,
    "max_length": 128,
    "logging_steps": 10,
    "num_threads": 1,
}
TOY_POLICY = {
    "max_prompt_length": 40,
    "kl_coeff": 0.05,
    "actor_learning_rate": 4e-4,
    "critic_learning_rate": 1e-4,
    "epochs": 1000,
    "max_steps": 100,
    "per_device_prompt_batch_size": 48,
    "per_device_train_batch_size": 48,
    "save_steps": 50,
    "num_threads": 1,
}
# PPO-Lag's cost threshold per round in the toy world (cost-model units: about -4 safe, +2..+4
# unsafe). Each round's cost model is retrained, and under it the last policy already scores
# below round 1's threshold, so a fixed one lets round 2 trade safety for reward; the paper's
# presets tighten it after round 1 too. Measured in docs/rounds.md ("Efficacy").
TOY_THRESHOLDS = (-3.5, -4.1)
TOY_EVALUATE = {
    "max_prompt_length": 40,
    "per_device_eval_batch_size": 100,
    "num_threads": 1,
    # 4 answers per held-out prompt and corner: the unsafe rate of one answer per prompt moved in steps
    # of 1/132 in the toy world, which hid the difference between rounds (docs/rounds.md "Efficacy").
    "samples_per_prompt": 4,
}


def is_toyworld(session: Session, project_id: int) -> bool:
    """A project is a toy-world project when its prompts were imported from the toy world (source
    `toyworld` or `toyworld-heldout`); its rounds are then also judged by the world's judges."""
    found = session.scalar(
        select(Prompt.id)
        .where(
            Prompt.project_id == project_id,
            Prompt.source.in_([TOYWORLD_SOURCE, TOYWORLD_SOURCE + HELDOUT_SUFFIX]),
        )
        .limit(1)
    )
    return found is not None


def last_round(session: Session, project_id: int, *, completed: bool = False) -> Round | None:
    query = select(Round).where(Round.project_id == project_id)
    if completed:
        query = query.where(Round.state == RoundState.completed)
    return session.scalar(query.order_by(Round.number.desc()).limit(1))


def _sources(session: Session, project_id: int) -> list[str]:
    rows = session.scalars(
        select(Prompt.source)
        .where(Prompt.project_id == project_id, Prompt.is_red_team.is_(False))
        .group_by(Prompt.source)
        .order_by(func.count().desc())
    )
    return [s for s in rows if not s.endswith(HELDOUT_SUFFIX)]


def list_prompt_sources(*, session: Session, project_id: int) -> list[tuple[str, int]]:
    """The project's imported prompt sets with their sizes, the largest first. Held-out sets are
    left out: they are the arena's, never sampled from; red-team prompts join a round on their own."""
    rows = session.execute(
        select(Prompt.source, func.count())
        .where(Prompt.project_id == project_id, Prompt.is_red_team.is_(False))
        .group_by(Prompt.source)
        .order_by(func.count().desc(), Prompt.source)
    ).all()
    return [(str(s), int(n)) for s, n in rows if not str(s).endswith(HELDOUT_SUFFIX)]


TOY_DPO = {**TOY_SUPERVISED, "learning_rate": 1e-4}


def _policy_preset(algorithm: str, *, toy: bool, number: int) -> dict[str, Any]:
    """Each algorithm's own options: a config of one is refused by another's stage."""
    if algorithm == "dpo":
        return dict(TOY_DPO) if toy else {}
    if toy:
        return dict(TOY_POLICY)
    # The paper's per-round PPO-Lag settings (§6.7): beaver-v1, -v2, then -v3.
    return {"preset": f"beaver-v{min(number, 3)}"} if algorithm == "ppo-lag" else {}


def round_presets(*, session: Session, project_id: int, algorithm: Algorithm = "ppo-lag") -> dict[str, Any]:
    """The pre-filled settings of the project's next round (editable before launch), with the
    policy stage's options for `algorithm`."""
    done = last_round(session, project_id, completed=True)
    latest = last_round(session, project_id)
    number = (latest.number if latest is not None else 0) + 1
    toy = is_toyworld(session, project_id)
    settings = RoundSettings(
        base_policy_id=done.policy_id if done is not None else None,
        prompt_sources=_sources(session, project_id)[:1],
        seed=number,
        algorithm=algorithm,
        policy_config=_policy_preset(algorithm, toy=toy, number=number),
    )
    if toy:
        settings.cost_threshold = TOY_THRESHOLDS[min(number, len(TOY_THRESHOLDS)) - 1]
        settings.reward_config = dict(TOY_SUPERVISED)
        settings.cost_config = dict(TOY_SUPERVISED)
        settings.evaluate_config = dict(TOY_EVALUATE)
    else:
        settings.max_new_tokens = 256
    return settings.model_dump()


def _parse(data: dict[str, Any]) -> tuple[RoundSettings | None, dict[str, str]]:
    try:
        return RoundSettings.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "is not a round setting"
            errors.setdefault(field, message)
        return None, errors


def _check_base_policy(session: Session, project_id: int, settings: RoundSettings) -> str | None:
    if settings.base_policy_id is None:
        return "choose the policy that answers this round's prompts (the SFT model for round 1)"
    model = session.get(ModelArtifact, settings.base_policy_id)
    if model is None or model.project_id not in (None, project_id):
        return f"model {settings.base_policy_id} is not in the registry of this project"
    if model.kind != ArtifactKind.policy:
        return f"model {settings.base_policy_id} is a {model.kind.value} model, not a policy"
    return None


def _check_prompts(session: Session, project_id: int, settings: RoundSettings) -> dict[str, str]:
    if not settings.prompt_sources:
        return {"prompt_sources": "choose at least one prompt set"}
    counts = dict(
        session.execute(
            select(Prompt.source, func.count())
            .where(Prompt.project_id == project_id, Prompt.source.in_(settings.prompt_sources))
            .group_by(Prompt.source)
        ).all()
    )
    missing = [s for s in settings.prompt_sources if s not in counts]
    if missing:
        return {"prompt_sources": f"the project has no prompts from {', '.join(repr(s) for s in missing)}"}
    return {}


def _check_gold(session: Session, project_id: int, settings: RoundSettings) -> str | None:
    """A gold rate needs gold items to serve: without them the round would silently serve none."""
    if settings.gold_rate == 0 or gold_item_count(session, project_id) > 0:
        return None
    return (
        "the project has no gold items: mark reviewed comparisons as gold on their review page "
        "(/review/comparisons/<id>) or import items with gold labels, or set 0"
    )


def validate_round_settings(*, session: Session, project_id: int, data: dict[str, Any]) -> RoundSettings:
    """The settings, or InvalidRoundSettings naming every field that is wrong."""
    from backend.services.rounds.stages import stage_config_errors

    settings, errors = _parse(data)
    if settings is None:
        raise InvalidRoundSettings(errors)
    base_error = _check_base_policy(session, project_id, settings)
    if base_error:
        errors["base_policy_id"] = base_error
    errors.update(_check_prompts(session, project_id, settings))
    gold_error = _check_gold(session, project_id, settings)
    if gold_error:
        errors["gold_rate"] = gold_error
    errors.update(stage_config_errors(settings, toy=is_toyworld(session, project_id)))
    if errors:
        raise InvalidRoundSettings(errors)
    return settings
