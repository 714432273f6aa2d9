"""Helpers for round tests without a worker: a project with prompts and a base policy, an
annotator who decides pairs through the real queue services, and a stand-in for the worker that
settles a job the way the worker does (the job row, its model in the registry, its output files)."""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.db.models import ModelArtifact, Prompt, TrainingJob, User
from backend.domain.enums import ArtifactKind, JobKind, JobState, UserRole
from backend.services.assignments import claim_next
from backend.services.models import register_model_dir
from backend.services.submissions import submit_annotation
from tests.factories import make_user
from tests.factories.annotation import SAFE, answer, make_project, unsafe
from tests.factories.models import fake_model_dir

_seeds = itertools.count(100)
PRODUCES = {
    JobKind.reward: ArtifactKind.reward,
    JobKind.cost: ArtifactKind.cost,
    JobKind.ppo_lag: ArtifactKind.policy,
    JobKind.ppo: ArtifactKind.policy,
    JobKind.reward_shaping: ArtifactKind.policy,
    JobKind.dpo: ArtifactKind.policy,
}


@dataclass
class RoundWorld:
    admin: User
    annotator: User
    project_id: int
    base_policy_id: int
    artifacts: Path


@pytest.fixture
def round_settings_env(settings: Any) -> Iterator[Any]:
    """The lifecycle reads the process settings (artifacts root, job queue): point them at the
    test's artifacts directory."""
    from backend.config import get_settings

    saved = os.environ.get("ARTIFACTS_DIR")
    os.environ["ARTIFACTS_DIR"] = str(settings.artifacts_dir)
    get_settings.cache_clear()
    yield settings
    if saved is None:
        os.environ.pop("ARTIFACTS_DIR", None)
    else:
        os.environ["ARTIFACTS_DIR"] = saved
    get_settings.cache_clear()


def register_fake_model(session: Session, settings: Any, kind: ArtifactKind, **links: Any) -> ModelArtifact:
    source = fake_model_dir(Path(settings.artifacts_dir) / f"src-{uuid.uuid4().hex[:10]}", seed=next(_seeds))
    model = register_model_dir(
        session=session, settings=settings, kind=kind, source_dir=source, name=source.name, **links
    )
    session.commit()
    return model


def make_world(session: Session, settings: Any, *, prompts: int = 6, source: str = "seed-set") -> RoundWorld:
    admin = make_user(session, role=UserRole.admin)
    annotator = make_user(session, role=UserRole.annotator)
    project = make_project(session, admin, members=[annotator])
    for i in range(prompts):
        text = f"How should I store chemical number {i} at home? ({uuid.uuid4().hex[:6]})"
        session.add(
            Prompt(
                project_id=project.id,
                text=text,
                content_hash=uuid.uuid4().hex * 2,
                source=source,
                harm_category="violence" if i % 2 else None,
            )
        )
    session.commit()
    base = register_fake_model(session, settings, ArtifactKind.policy, project_id=project.id)
    return RoundWorld(admin, annotator, project.id, base.id, Path(settings.artifacts_dir))


def _prompt_rows(artifacts: Path, key: str) -> list[dict[str, Any]]:
    lines = (artifacts / key / "prompts.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _write_outputs(world: RoundWorld, job: TrainingJob) -> None:
    output = world.artifacts / (job.output_key or f"jobs/{job.id}") / "output"
    output.mkdir(parents=True, exist_ok=True)
    if job.kind == JobKind.generate:
        rows = _prompt_rows(world.artifacts, job.inputs["prompts_key"])
        seed = job.config["seed"]
        lines = [json.dumps({**r, "response": f"answer with seed {seed} to {r['prompt_id']}"}) for r in rows]
        (output / "generations.jsonl").write_text("\n".join(lines) + "\n")
    if job.kind == JobKind.evaluate:
        summary = {"eval/blue_win_rate": 0.6, "eval/blue/reward": 1.5, "eval/blue/cost": -0.5}
        (output / "summary.json").write_text(json.dumps(summary))


def settle(
    session: Session, settings: Any, world: RoundWorld, job_id: int, state: JobState = JobState.succeeded
) -> None:
    """What the worker does when the stage exits: outputs, the produced model, the final state."""
    job = session.get(TrainingJob, job_id)
    assert job is not None
    if state == JobState.succeeded:
        _write_outputs(world, job)
        kind = PRODUCES.get(job.kind)
        if kind is not None:
            register_fake_model(
                session,
                settings,
                kind,
                project_id=job.project_id,
                round_id=job.round_id,
                training_job_id=job.id,
                parent_id=job.inputs.get("base_model_id"),
                metrics={"eval/accuracy": 0.9, "eval/accuracy_sign": 0.8},
            )
    job.state, job.finished_at = state, utcnow()
    job.error = None if state == JobState.succeeded else "the stage crashed"
    session.commit()


def decide_all(session: Session, world: RoundWorld, project_id: int) -> int:
    """The annotator answers every comparison the queue hands out (left more helpful and safe)."""
    done = 0
    while True:
        task = claim_next(session=session, user=world.annotator, project_id=project_id)
        session.commit()
        if task is None:
            return done
        shown = answer(left=SAFE, right=unsafe("violence"), helpful="left", harmless="left")
        submit_annotation(
            session=session,
            user=world.annotator,
            assignment_id=task.assignment_id,
            answer=shown,
            idempotency_key=str(uuid.uuid4()),
        )
        session.commit()
        done += 1


def jobs_of(session: Session, round_id: int) -> list[TrainingJob]:
    return list(
        session.scalars(select(TrainingJob).where(TrainingJob.round_id == round_id).order_by(TrainingJob.id))
    )
