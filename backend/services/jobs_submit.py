"""Submitting, listing, cancelling and retrying training jobs (the web side of issue 10).

A submission is validated completely before anything is queued: the config by the stage's own
validator (the same message the CLI gives), the inputs by looking up their rows. The message that
wakes a worker is published by the caller after the commit (backend.queue.send), never inside the
transaction; a lost message is re-published by the reaper (docs/design/reliability.md B3).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.db.models import DatasetSnapshot, ModelArtifact, TrainingJob
from backend.domain.caller import Caller
from backend.domain.enums import JobKind, JobState
from backend.domain.errors import Conflict, InvalidInput, NotFound
from training.config import validate_stage_config
from training.errors import ConfigError
from training.stages import get_stage

# Input role (training.stages.INPUT_ROLES) -> the key of `inputs` naming it by id: datasets are
# snapshots, everything else is a registered model. The worker resolves each to a path and writes
# it into the config key the stage declares for that role (Stage.input_fields).
SNAPSHOT_ROLES: dict[str, str] = {
    "dataset": "snapshot_id",
    "eval_dataset": "eval_snapshot_id",
    "ptx_dataset": "ptx_snapshot_id",
}
MODEL_ROLES = (
    "base_model",
    "reference_model",
    "reward_model",
    "cost_model",
    "reward_critic",
    "cost_critic",
    "red_model",
    "blue_model",
)
ROLE_INPUTS: dict[str, str] = {**SNAPSHOT_ROLES, **{role: f"{role}_id" for role in MODEL_ROLES}}
SNAPSHOT_INPUTS = frozenset(SNAPSHOT_ROLES.values())
# A prompt file the server wrote (a round's prompts) stands in for the `dataset` role: its key is
# content-addressed (prompts/<sha256>), chosen by the server, never a client path.
PROMPTS_INPUT = "prompts_key"
PROMPTS_KEY_RE = re.compile(r"^prompts/([0-9a-f]{64})$")
PROMPTS_FILE = "prompts.jsonl"
PLACEHOLDER = "/platform-resolves-this"  # stands in for a path the worker fills in, for validation
MAX_GPUS = 64


@dataclass(frozen=True)
class SubmitResult:
    job: TrainingJob
    created: bool  # False: an identical job already succeeded, and this is that job


def _platform_keys(kind: JobKind, config: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
    """Config key -> placeholder for every path the platform fills in: the stage's input fields and
    its output directory. A config that names one of them itself is refused: clients name inputs
    by id, never by a server path."""
    stage = get_stage(kind.value)
    owned = {key: role for role, key in stage.input_fields.items()}
    for key in config:
        if key == stage.output_field:
            raise ConfigError(
                f"option {key!r} is chosen by the platform (the job's own directory); remove it"
            )
        if key in owned:
            hint = ROLE_INPUTS.get(owned[key], owned[key])
            raise ConfigError(f"option {key!r} is set by the platform from the input {hint!r}; remove it")
    accepted = {ROLE_INPUTS[role] for role in stage.input_fields if role in ROLE_INPUTS}
    if "dataset" in stage.input_fields:
        accepted.add(PROMPTS_INPUT)
    for name in inputs:
        if name not in accepted:
            takes = ", ".join(sorted(accepted)) or "none"
            raise ConfigError(f"stage {stage.name!r} takes no input {name!r} (it takes: {takes})")
    for role in stage.required_inputs():
        if role == "dataset" and PROMPTS_INPUT in inputs:
            continue
        if ROLE_INPUTS.get(role) not in inputs:
            raise ConfigError(f"stage {stage.name!r} needs the input {ROLE_INPUTS.get(role, role)!r}")
    placeholders = {key: PLACEHOLDER for key in owned}
    placeholders[stage.output_field] = PLACEHOLDER
    return placeholders


def _validated_config(kind: JobKind, config: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """The stage's own validation (torch-free modules only; import contracts keep them so): the 422
    carries exactly the message `python -m training` prints. Returns the normalised config,
    defaults filled in, without the paths the platform owns."""
    try:
        platform = _platform_keys(kind, config, inputs)
        normalised = validate_stage_config(kind.value, {**config, **platform})
    except ConfigError as exc:
        raise InvalidInput(str(exc), code="invalid_config") from None
    return {key: value for key, value in normalised.items() if key not in platform}


def _input_hashes(session: Session, *, inputs: dict[str, Any], project_id: int | None) -> dict[str, str]:
    """The content hash of every named input; a missing row or another project's is refused."""
    unknown = sorted(set(inputs) - set(ROLE_INPUTS.values()) - {PROMPTS_INPUT})
    if unknown:
        raise InvalidInput(
            f"unknown input {unknown[0]!r} (inputs: {', '.join(ROLE_INPUTS.values())})", code="invalid_input"
        )
    hashes: dict[str, str] = {}
    for key, value in sorted(inputs.items()):
        if key == PROMPTS_INPUT:
            match = PROMPTS_KEY_RE.match(str(value))
            if match is None:
                raise InvalidInput(f"input {key!r} must be a key prompts/<sha256> the server wrote")
            hashes[key] = match.group(1)
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInput(f"input {key!r} must be an id (an integer), got {value!r}")
        row: DatasetSnapshot | ModelArtifact | None
        if key in SNAPSHOT_INPUTS:
            row = session.get(DatasetSnapshot, value)
            what, digest = "dataset snapshot", row.content_sha256 if row else ""
        else:
            row = session.get(ModelArtifact, value)
            what, digest = "model", row.sha256 if row else ""
        if row is None or (project_id is not None and row.project_id not in (None, project_id)):
            raise NotFound(f"{what} {value} not found", code="input_not_found")
        hashes[key] = digest
    return hashes


def job_key(kind: JobKind, config: dict[str, Any], input_hashes: dict[str, str]) -> str:
    """sha256 over the kind, the normalised config and the inputs' content hashes (not their ids:
    the same data re-exported under a new id is the same job)."""
    body = json.dumps(
        {"kind": kind.value, "config": config, "inputs": input_hashes},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def placement_error(kind: JobKind, *, gpus: int, nodes: int) -> str | None:
    """Why the launcher cannot start ``kind`` on ``gpus`` GPUs over ``nodes`` nodes, or None.
    Checked at submission, and again by the worker for a job queued before the rule existed."""
    if gpus % nodes:
        # The launcher starts gpus/nodes processes on each node (gpus counts all nodes together).
        return f"{gpus} GPUs do not split evenly over {nodes} nodes: each node runs gpus/nodes ranks"
    if gpus > 1 and not get_stage(kind.value).trains:
        # Under the launcher every rank would run the whole stage and write the same files.
        return f"{kind.value} runs in one process; submit it with gpus=1"
    return None


def submit_job(
    *,
    session: Session,
    caller: Caller | None,
    kind: JobKind,
    config: dict[str, Any],
    inputs: dict[str, Any],
    project_id: int | None = None,
    round_id: int | None = None,
    gpus: int = 1,
    nodes: int = 1,
    max_attempts: int = 3,
    queue: str = "gpu",
    commit: bool = True,
) -> SubmitResult:
    """Create a queued job, or return the succeeded job with the same kind, config and inputs.
    Commits (unless commit=False: a round submits its stage's jobs and moves its state in one
    transaction); the caller publishes the wake-up message afterwards."""
    if not 1 <= gpus <= MAX_GPUS or not 1 <= nodes <= MAX_GPUS or nodes > gpus:
        raise InvalidInput(f"gpus must lie in 1..{MAX_GPUS} and nodes in 1..gpus")
    refusal = placement_error(kind, gpus=gpus, nodes=nodes)
    if refusal:
        raise InvalidInput(refusal)
    if not 1 <= max_attempts <= 20:
        raise InvalidInput("max_attempts must lie in 1..20")
    normalised = _validated_config(kind, config, inputs)
    key = job_key(kind, normalised, _input_hashes(session, inputs=inputs, project_id=project_id))
    done = session.scalar(
        select(TrainingJob)
        .where(TrainingJob.inputs_sha256 == key, TrainingJob.state == JobState.succeeded)
        .order_by(TrainingJob.id)
        .limit(1)
    )
    if done is not None:
        return SubmitResult(done, created=False)
    job = TrainingJob(
        kind=kind,
        config=normalised,
        inputs=dict(inputs),
        inputs_sha256=key,
        project_id=project_id,
        round_id=round_id,
        gpus=gpus,
        nodes=nodes,
        max_attempts=max_attempts,
        created_by_id=None if caller is None else caller.id,  # None: the server's own CLI
        queue=queue,
        state=JobState.queued,
    )
    session.add(job)
    session.flush()
    job.output_key = f"jobs/{job.id}"
    if commit:
        session.commit()
    return SubmitResult(job, created=True)


def mark_published(*, session: Session, job_id: int) -> None:
    session.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(published_at=utcnow()))
    session.commit()


def get_job(*, session: Session, job_id: int) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise NotFound(f"training job {job_id} not found")
    return job


def list_jobs(
    *,
    session: Session,
    project_id: int | None = None,
    state: JobState | None = None,
    kind: JobKind | None = None,
    limit: int = 100,
) -> list[TrainingJob]:
    query = select(TrainingJob).order_by(TrainingJob.id.desc()).limit(max(1, min(limit, 1000)))
    if project_id is not None:
        query = query.where(TrainingJob.project_id == project_id)
    if state is not None:
        query = query.where(TrainingJob.state == state)
    if kind is not None:
        query = query.where(TrainingJob.kind == kind)
    return list(session.scalars(query))


def _locked(session: Session, job_id: int) -> TrainingJob:
    job = session.scalar(select(TrainingJob).where(TrainingJob.id == job_id).with_for_update())
    if job is None:
        raise NotFound(f"training job {job_id} not found")
    return job


def cancel_job(*, session: Session, job_id: int, commit: bool = True) -> TrainingJob:
    """A queued job is cancelled at once. A running one is marked: its worker's next heartbeat
    fails, the worker stops the process group and records the cancellation (or, if the worker is
    gone, the reaper does)."""
    job = _locked(session, job_id)
    now = utcnow()
    if job.state == JobState.queued:
        job.state, job.finished_at, job.cancelled_at = JobState.cancelled, now, now
    elif job.state == JobState.running:
        if not job.cancel_requested:
            job.cancel_requested, job.cancelled_at = True, now
    else:
        raise Conflict(
            f"training job {job_id} is {job.state.value}; only queued or running jobs can be cancelled"
        )
    if commit:
        session.commit()
    return job


def retry_job(*, session: Session, job_id: int, commit: bool = True) -> TrainingJob:
    """A failed or cancelled job is queued again with a fresh attempt budget, in the same job
    directory, so it resumes from its last complete checkpoint. The caller publishes."""
    job = _locked(session, job_id)
    if job.state not in (JobState.failed, JobState.cancelled):
        raise Conflict(
            f"training job {job_id} is {job.state.value}; only failed or cancelled jobs can be retried"
        )
    job.state, job.attempt, job.error = JobState.queued, 0, None
    job.cancel_requested, job.cancelled_at, job.finished_at = False, None, None
    job.lease_token, job.lease_expires_at, job.worker_id, job.published_at = None, None, None, None
    if commit:
        session.commit()
    return job
