"""sft, ppo, reward-shaping and dpo as real jobs on one Celery worker, with the micro model: each job
succeeds, its events reach Postgres, and the policy it wrote is registered with its lineage and
loads with transformers. The inputs are the ones a round gives these stages (policy_spec in
backend/services/rounds/stages.py): ppo and reward-shaping read a server-written prompt file, dpo
and sft a dataset snapshot."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import func, select

from backend.db.models import Metric, ModelArtifact
from backend.domain.enums import ArtifactKind, JobState
from tests.support.processes import child_env, start, stop
from tests.training.rl_fixtures import save_micro_score_model, write_prompts
from tests.worker.conftest import Platform, register_snapshot, worker_command

CPU = {"num_threads": 1, "device": "cpu", "save_steps": 100}
SUPERVISED = {"epochs": 1, "per_device_train_batch_size": 8, "max_length": 64, "logging_steps": 1, **CPU}
RL = {
    "max_prompt_length": 40,
    "max_new_tokens": 8,
    "per_device_prompt_batch_size": 4,
    "per_device_train_batch_size": 4,
    "logging_steps": 1,
    **CPU,
}
# Stage -> (config, a metric of the stage's own objective, checked in Postgres and summary.json).
# A few optimizer steps each.
STAGES: dict[str, tuple[dict[str, Any], str]] = {
    "sft": ({**SUPERVISED, "max_steps": 3, "gradient_accumulation_steps": 1, "seed": 21}, "train/loss"),
    "ppo": ({**RL, "max_steps": 2, "seed": 22}, "train/reward_critic_loss"),
    "reward-shaping": ({**RL, "max_steps": 2, "nu": 2.0, "seed": 23}, "train/shaped_reward"),
    "dpo": ({**SUPERVISED, "max_steps": 3, "seed": 24}, "train/reward_accuracy"),
}
TIMEOUT = 600
DONE = (JobState.succeeded, JobState.failed, JobState.cancelled)


def _prompts_key(platform: Platform, prompts: Path) -> str:
    """A prompt file where a round writes one (prompts/<key>/prompts.jsonl); the key is fresh per
    module, so no job of an earlier run with the same content answers for this one."""
    data = prompts.read_bytes()
    key = "prompts/" + hashlib.sha256(data + uuid.uuid4().bytes).hexdigest()
    folder = platform.artifacts / key
    folder.mkdir(parents=True)
    (folder / "prompts.jsonl").write_bytes(data)
    return key


@pytest.fixture(scope="module")
def jobs(
    platform: Platform,
    toy_world: Path,
    micro_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """Registers a micro reward and cost model and the stages' data, starts one worker, submits the
    four jobs and waits until every one has finished. Yields the ids."""
    from backend.services.models import register_model_dir

    root = tmp_path_factory.mktemp("policy-stage-inputs")
    with platform.sessions() as session:
        scores = {}
        for kind, seed, bias in ((ArtifactKind.reward, 1, 0.0), (ArtifactKind.cost, 2, 0.1)):
            folder = save_micro_score_model(micro_model, root / kind.value, seed=seed, bias=bias)
            scores[kind] = register_model_dir(
                session=session,
                settings=platform.settings,
                kind=kind,
                source_dir=folder,
                name=f"micro {kind.value}",
                project_id=platform.project_id,
                parent_id=platform.base_model_id,
            ).id
        session.commit()
        sft_snapshot = register_snapshot(
            session, platform.project_id, platform.artifacts, toy_world / "sft.jsonl"
        )
    prompts_key = _prompts_key(platform, write_prompts(toy_world, root / "prompts.jsonl", "train", limit=64))
    base, snapshot = platform.base_model_id, platform.snapshot_id
    inputs: dict[str, dict[str, Any]] = {
        "sft": {"base_model_id": base, "snapshot_id": sft_snapshot},
        "ppo": {
            "base_model_id": base,
            "reward_model_id": scores[ArtifactKind.reward],
            "prompts_key": prompts_key,
        },
        "reward-shaping": {
            "base_model_id": base,
            "reward_model_id": scores[ArtifactKind.reward],
            "cost_model_id": scores[ArtifactKind.cost],
            "prompts_key": prompts_key,
        },
        # As a round submits it: no reference named, so the stage uses the base as its reference.
        "dpo": {"base_model_id": base, "snapshot_id": snapshot},
    }
    log = root / "worker.log"
    # Two jobs at a time, one torch thread each (num_threads 1).
    worker = start(
        worker_command(platform.queue, f"policy-{platform.queue}@%h", concurrency=2),
        env=child_env(**platform.env),
        log=log,
    )
    try:
        ids = {
            stage: platform.submit(config, kind=stage, inputs=inputs[stage])
            for stage, (config, _) in STAGES.items()
        }
        for job_id in ids.values():
            platform.wait_for(job_id, lambda j: j.state in DONE, timeout=TIMEOUT, what="finished")
        yield {"ids": ids, "inputs": inputs, "scores": scores, "sft_snapshot": sft_snapshot}
    finally:
        stop(worker)


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_policy_stage_runs_as_a_job_and_registers_its_policy(
    platform: Platform, jobs: dict[str, Any], stage: str
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backend.api.schemas.models import Lineage
    from backend.services.models import model_lineage, resolve_model_dir

    config, own_metric = STAGES[stage]
    job_id = jobs["ids"][stage]
    job = platform.job(job_id)
    assert job.state == JobState.succeeded, job.error
    steps = config["max_steps"]
    assert (job.attempt, job.current_step, job.total_steps, job.progress) == (1, steps, steps, 1.0)
    events = platform.artifacts / f"jobs/{job_id}/output/events.jsonl"
    last = json.loads(events.read_text().splitlines()[-1])
    assert job.ingest_seq == last["seq"] + 1 and last["status"] == "completed"
    with platform.sessions() as session:
        names = set(session.scalars(select(Metric.name).where(Metric.job_id == job_id)))
        rows = session.scalar(select(func.count()).where(Metric.job_id == job_id, Metric.name == own_metric))
        model = session.scalar(select(ModelArtifact).where(ModelArtifact.training_job_id == job_id))
        assert model is not None
        lineage = model_lineage(session=session, model=model)
        folder = resolve_model_dir(session=session, settings=platform.settings, model_id=model.id)
    assert rows and rows >= 1, f"no {own_metric} rows; ingested: {sorted(names)}"
    # The registry: a policy trained from the base, on the data and models the job was given.
    assert model.kind == ArtifactKind.policy and model.project_id == platform.project_id
    assert model.parent_id == platform.base_model_id
    assert lineage["parent"]["id"] == platform.base_model_id
    assert lineage["training_job"]["id"] == job_id and lineage["training_job"]["kind"] == stage
    assert model.snapshot_id == jobs["inputs"][stage].get("snapshot_id")  # ppo, reward-shaping: none
    # The lineage names the reward and cost models the policy was trained against (by id).
    linked = Lineage.model_validate(lineage).training_job
    assert linked is not None and linked.inputs == jobs["inputs"][stage]
    scored_with = {key: linked.inputs.get(key) for key in ("reward_model_id", "cost_model_id")}
    reward, cost = jobs["scores"][ArtifactKind.reward], jobs["scores"][ArtifactKind.cost]
    assert (
        scored_with
        == {
            "sft": {"reward_model_id": None, "cost_model_id": None},
            "ppo": {"reward_model_id": reward, "cost_model_id": None},
            "reward-shaping": {"reward_model_id": reward, "cost_model_id": cost},
            "dpo": {"reward_model_id": None, "cost_model_id": None},
        }[stage]
    )
    assert own_metric in model.metrics  # the stage's summary.json
    assert not any(f["path"].startswith("checkpoints") for f in model.files)
    # The registered files load with transformers and are not the base's weights.
    policy = AutoModelForCausalLM.from_pretrained(folder)
    AutoTokenizer.from_pretrained(folder)
    with platform.sessions() as session:
        base_dir = resolve_model_dir(
            session=session, settings=platform.settings, model_id=platform.base_model_id
        )
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    moved = [
        name
        for (name, after), before in zip(policy.named_parameters(), base.parameters(), strict=True)
        if not torch.equal(after, before)
    ]
    assert moved, "the registered policy has exactly the base model's weights"
