"""The per-round report: one row per round, from its jobs' summaries and its annotations.

Sources: the reward model's `eval/accuracy`, the cost model's `eval/accuracy_sign` and its recall
per harm category, `eval/recall/<category>` with `eval/unsafe_count/<category>` (their
summary.json, kept as the registered model's metrics); λ from the policy job's last
`train/lambda`; mean reward, mean cost and the unsafe ratio of the new policy, its win rates and,
in the toy world, the judges' true helpfulness and unsafe rate from the arena's summary.json on
held-out prompts; agreement per axis from the round's votes (backend/services/quality). A
completed round's row is stored in round.report; a round still running gets a live, partial row.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db.models import Metric, ModelArtifact, Round, TrainingJob
from backend.domain.enums import RoundState
from backend.domain.errors import DomainError
from backend.services.quality.agreement import agreement
from backend.services.quality.report import _units
from backend.services.quality.votes import load_votes
from backend.services.storage import resolve_artifact

COLUMNS = (
    "round",
    "state",
    "reward_accuracy",
    "cost_sign_accuracy",
    "mean_reward",
    "mean_cost",
    "unsafe_ratio",
    "lambda",
    "win_rate",
    "agreement_helpfulness",
    "agreement_harmlessness",
    "true_helpfulness",
    "true_unsafe_rate",
    "cost_recall_by_category",
    "cost_unsafe_count_by_category",
)
SAFETY_CELLS = (
    "red_safe/blue_safe",
    "red_safe/blue_unsafe",
    "red_unsafe/blue_safe",
    "red_unsafe/blue_unsafe",
)


def _metric(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if isinstance(value, int | float) else None


def _by_category(metrics: dict[str, Any], prefix: str) -> dict[str, float] | None:
    """{category: value} of the metrics named `<prefix><category>`; None when there are none (the
    held-out part had no response labelled unsafe, or the model predates the metric)."""
    found = {
        key.removeprefix(prefix): float(value)
        for key, value in metrics.items()
        if key.startswith(prefix) and isinstance(value, int | float)
    }
    return dict(sorted(found.items())) or None


def _counts(values: dict[str, float] | None) -> dict[str, int] | None:
    return None if values is None else {name: int(count) for name, count in values.items()}


def _model_metrics(session: Session, model_id: int | None) -> dict[str, Any]:
    model = None if model_id is None else session.get(ModelArtifact, model_id)
    return dict(model.metrics or {}) if model is not None else {}


def _last_metric(session: Session, job_id: int | None, name: str) -> float | None:
    if job_id is None:
        return None
    value = session.scalar(
        select(Metric.value)
        .where(Metric.job_id == job_id, Metric.name == name)
        .order_by(Metric.step.desc())
        .limit(1)
    )
    return None if value is None else float(value)


def _job_summary(job: TrainingJob | None) -> dict[str, Any]:
    if job is None or not job.output_key:
        return {}
    try:
        path = resolve_artifact(
            Path(get_settings().artifacts_dir), f"{job.output_key}/output", "summary.json"
        )
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, DomainError):  # a missing summary leaves the cells empty
        return {}
    return data if isinstance(data, dict) else {}


def _arena(summary: dict[str, Any]) -> dict[str, Any]:
    categories = sorted(
        {k.split("/")[2] for k in summary if k.startswith("eval/category/") and k.endswith("/prompts")}
    )
    return {
        "win_rate": _metric(summary, "eval/blue_win_rate"),
        "by_safety": {cell: _metric(summary, f"eval/blue_win_rate/{cell}") for cell in SAFETY_CELLS},
        "by_category": {
            name: {
                "prompts": _metric(summary, f"eval/category/{name}/prompts"),
                "reward_new": _metric(summary, f"eval/category/{name}/blue/reward"),
                "reward_previous": _metric(summary, f"eval/category/{name}/red/reward"),
                "unsafe_ratio_new": _metric(summary, f"eval/category/{name}/blue/unsafe_ratio"),
                "unsafe_ratio_previous": _metric(summary, f"eval/category/{name}/red/unsafe_ratio"),
            }
            for name in categories
        },
    }


def _agreement(session: Session, round_: Round) -> dict[str, float | None]:
    votes = [
        v
        for v in load_votes(session, project_id=round_.project_id)
        if v.round_id == round_.id and not v.is_gold
    ]
    return {
        f"agreement_{axis}": agreement(_units(votes, axis)).percent
        for axis in ("helpfulness", "harmlessness")
    }


def _stage_job(session: Session, round_: Round, stage: RoundState) -> TrainingJob | None:
    from backend.services.rounds.lifecycle import stage_job_ids

    ids = stage_job_ids(round_, stage)
    return session.get(TrainingJob, ids[0]) if ids else None


def build_round_report(session: Session, round_: Round) -> dict[str, Any]:
    reward = _model_metrics(session, round_.reward_model_id)
    cost = _model_metrics(session, round_.cost_model_id)
    policy_job = _stage_job(session, round_, RoundState.policy)
    arena = _job_summary(_stage_job(session, round_, RoundState.evaluating))
    row: dict[str, Any] = {
        "round": round_.number,
        "round_id": round_.id,
        "state": round_.state.value,
        "reward_accuracy": _metric(reward, "eval/accuracy"),
        "cost_sign_accuracy": _metric(cost, "eval/accuracy_sign"),
        "mean_reward": _metric(arena, "eval/blue/reward"),
        "mean_cost": _metric(arena, "eval/blue/cost"),
        "unsafe_ratio": _metric(arena, "eval/blue/unsafe_ratio"),
        "lambda": _last_metric(session, None if policy_job is None else policy_job.id, "train/lambda"),
        "arena": _arena(arena),
        "win_rate": _metric(arena, "eval/blue_win_rate"),
        "cost_recall_by_category": _by_category(cost, "eval/recall/"),
        "cost_unsafe_count_by_category": _counts(_by_category(cost, "eval/unsafe_count/")),
        "true_helpfulness": _metric(arena, "eval/blue/true_helpfulness"),
        "true_unsafe_rate": _metric(arena, "eval/blue/true_unsafe_ratio"),
        "previous_true_helpfulness": _metric(arena, "eval/red/true_helpfulness"),
        "previous_true_unsafe_rate": _metric(arena, "eval/red/true_unsafe_ratio"),
        "policy_id": round_.policy_id,
        "reward_model_id": round_.reward_model_id,
        "cost_model_id": round_.cost_model_id,
        "snapshot_id": round_.snapshot_id,
    }
    row.update(_agreement(session, round_))
    return row


def round_report(*, session: Session, project_id: int) -> list[dict[str, Any]]:
    rounds = session.scalars(select(Round).where(Round.project_id == project_id).order_by(Round.number))
    rows = []
    for round_ in rounds:
        if round_.state == RoundState.completed and round_.report:
            rows.append(dict(round_.report))
        else:
            rows.append(build_round_report(session, round_))
    return rows


def _cell(value: Any) -> Any:
    """A CSV cell: empty for null; a per-category dict as JSON (the categories vary by round)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def report_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row.get(key)) for key in COLUMNS})
    return out.getvalue()
