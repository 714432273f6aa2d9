"""Running one training job on this worker: claim, prepare, launch, follow, and settle.

The task takes a job id only. The row is claimed with a conditional UPDATE (a duplicate delivery
finds it no longer queued and returns); the worker writes ``run.json`` into the job's own
directory (``<ARTIFACTS_DIR>/jobs/<id>/``) with the inputs resolved to paths, checks that the
model states fit the GPUs (below), starts ``python -m training STAGE`` in a new process group,
renews the lease from a heartbeat thread, ingests events.jsonl while the stage runs, and settles
the job by exit status:

- 0: register the produced model and succeed (one fenced transaction);
- 2: a user mistake (bad option, bad data): failed at once with the stage's one-line message;
- anything else, or a signal: queued again while attempts remain (the retry resumes from the last
  complete checkpoint in the same output directory), else failed with the tail of stderr.

A worker that lost its lease stops the subprocess and writes nothing more (worker/fence.py).

The memory check is the planner's (training/planning/check.py, torch-free): a training job whose
model states cannot fit one GPU's memory (``WORKER_GPU_MEMORY``, else the smallest visible GPU)
under its ZeRO stage and offload, across all ``gpus`` of the job, fails at once and for good with
the planner's line, which names a setting that would fit; no process is started, so no GPU hour is
spent finding out. A worker without GPUs and without the setting checks nothing, nor does a job
configured with ``device=cpu``. The stage makes the same check again on its own GPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.config import REPO_ROOT, Settings
from backend.db.models import DatasetSnapshot, TrainingJob
from backend.domain.enums import JobState
from backend.domain.errors import DomainError
from backend.services.jobs import Lease, claim_job
from backend.services.jobs_submit import (
    PROMPTS_FILE,
    PROMPTS_INPUT,
    ROLE_INPUTS,
    SNAPSHOT_INPUTS,
    placement_error,
)
from backend.services.storage import resolve_artifact
from training.errors import ConfigError
from training.planning.check import ensure_fits
from training.stages import get_stage
from worker import fence, launch
from worker.heartbeat import Heartbeat
from worker.ingest import EventTail, digest, log_tail, store

logger = logging.getLogger(__name__)
SNAPSHOT_DATA = "data.jsonl"
EXIT_POLL_S = 0.1


class InputError(Exception):
    """An input that cannot be resolved (deleted model, missing snapshot files): fails the job."""


@dataclass
class Outcome:
    job_id: int
    outcome: str  # not-queued | succeeded | failed | requeued | cancelled | lost
    detail: str = ""
    publish: bool = False  # requeued: the caller publishes a new wake-up message
    queue: str = ""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _resolve_inputs(session: Session, settings: Settings, job: TrainingJob) -> dict[str, str]:
    """Config key -> local path, for every input role the stage declares."""
    stage = get_stage(job.kind.value)
    paths: dict[str, str] = {}
    for role, config_key in stage.input_fields.items():
        input_key = ROLE_INPUTS.get(role, "")
        if role == "dataset" and PROMPTS_INPUT in (job.inputs or {}):
            path = resolve_artifact(settings.artifacts_dir, str(job.inputs[PROMPTS_INPUT]), PROMPTS_FILE)
            if not path.is_file():
                raise InputError(f"the prompt file {job.inputs[PROMPTS_INPUT]} is missing on this worker")
            paths[config_key] = str(path)
            continue
        ident = (job.inputs or {}).get(input_key)
        if ident is None:
            continue  # optional for this stage (submission refused a missing required one)
        if input_key in SNAPSHOT_INPUTS:
            snapshot = session.get(DatasetSnapshot, ident)
            if snapshot is None:
                raise InputError(f"dataset snapshot {ident} no longer exists")
            path = resolve_artifact(settings.artifacts_dir, snapshot.storage_key, SNAPSHOT_DATA)
        else:
            from backend.services.models import resolve_model_dir

            path = resolve_model_dir(session=session, settings=settings, model_id=int(ident))
        if not path.exists():
            raise InputError(f"the files of input {input_key}={ident} are missing on this worker")
        paths[config_key] = str(path)
    return paths


def _prepare(session: Session, settings: Settings, job: TrainingJob) -> tuple[Path, Path, dict[str, Any]]:
    """Write run.json into the job directory; (job_dir, output_dir, the config written)."""
    job_dir = settings.artifacts_dir / (job.output_key or f"jobs/{job.id}")
    output_dir = job_dir / "output"
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        paths = _resolve_inputs(session, settings, job)
    except DomainError as exc:
        raise InputError(exc.detail) from None
    stage = get_stage(job.kind.value)
    config: dict[str, Any] = {**job.config, **paths, stage.output_field: str(output_dir)}
    if stage.trains and "resume" in {f.name for f in dataclasses.fields(stage.config_cls)}:
        config["resume"] = "auto"  # a retry continues from the last complete checkpoint
    (job_dir / "run.json").write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    return job_dir, output_dir, config


def gpu_memory(settings: Settings) -> int | None:
    """Bytes of one GPU for the memory check: the operator's WORKER_GPU_MEMORY, else the smallest
    visible GPU (read once per worker process); None (no check) on a worker without GPUs."""
    if settings.worker_gpu_memory is not None:
        return settings.worker_gpu_memory
    return launch.visible_gpu_memory()


def memory_refusal(job: TrainingJob, config: dict[str, Any], memory: int | None) -> str | None:
    """The planner's one-line refusal when the job's model states cannot fit ``memory`` bytes per
    GPU over its ``gpus`` (all nodes together); None when they fit or nothing can be checked."""
    if memory is None or config.get("device") == "cpu":
        return None  # nothing known to check against, or a run that uses no GPU memory
    if not get_stage(job.kind.value).trains:
        return None  # generate and evaluate hold no optimizer states: the planner has no model of them
    try:
        ensure_fits(job.kind.value, config, gpus=job.gpus, gpu_memory=memory)
    except ConfigError as exc:
        return str(exc)
    return None


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Follower:
    """Ingests events.jsonl into the database, fenced; remembers what settling needs."""

    def __init__(self, job: TrainingJob, lease: Lease, job_dir: Path, output_dir: Path) -> None:
        self.lease, self.job_dir, self.output_key = lease, job_dir, job.output_key
        self.tail = EventTail(output_dir / "events.jsonl")
        self.next_seq = job.ingest_seq
        self.failed_message: str | None = None
        self.owned = True

    def ingest(self, session: Session) -> bool:
        batch = digest(self.tail.read_new(), from_seq=self.next_seq)
        if batch.failed_message:
            self.failed_message = batch.failed_message
        tail = log_tail(self.job_dir / "stderr.log")
        if store(session, lease=self.lease, batch=batch, output_key=self.output_key, tail=tail):
            self.next_seq = batch.next_seq
            return True
        self.owned = False
        return False


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _settle(
    session: Session,
    settings: Settings,
    *,
    lease: Lease,
    job: TrainingJob,
    rc: int,
    follower: Follower,
    output_dir: Path,
) -> Outcome:
    stderr = log_tail(follower.job_dir / "stderr.log")
    if rc == 0:
        try:
            ok = fence.succeed(
                session,
                lease,
                settings=settings,
                output_dir=output_dir,
                produces=get_stage(job.kind.value).produces,
            )
        except DomainError as exc:  # e.g. the registry refused the weights
            session.rollback()
            ok = fence.finish(session, lease, JobState.failed, f"registering the model failed: {exc.detail}")
            return Outcome(job.id, "failed" if ok else "lost", exc.detail)
        return Outcome(job.id, "succeeded" if ok else "lost")
    if rc == 2:
        message = (
            _last_line(stderr).removeprefix("error: ")
            or follower.failed_message
            or "the stage refused its input"
        )
        ok = fence.finish(session, lease, JobState.failed, message)
        return Outcome(job.id, "failed" if ok else "lost", message)
    reason = f"attempt {lease.attempt} exited with status {rc}"
    if lease.attempt < job.max_attempts:
        ok = fence.requeue(session, lease, reason)
        return Outcome(job.id, "requeued" if ok else "lost", reason, publish=ok, queue=job.queue)
    error = f"{reason}, the last of {job.max_attempts}:\n{stderr[-2000:]}".rstrip()
    ok = fence.finish(session, lease, JobState.failed, error)
    return Outcome(job.id, "failed" if ok else "lost", reason)


def _command(settings: Settings, job: TrainingJob, job_dir: Path) -> list[str]:
    refusal = placement_error(job.kind, gpus=job.gpus, nodes=job.nodes)
    if refusal:
        raise InputError(refusal)
    hostfile = None
    if job.nodes > 1:
        if settings.job_hostfile is None:
            raise InputError(f"the job asks for {job.nodes} nodes but this worker has no JOB_HOSTFILE")
        hostfile = settings.job_hostfile
    try:
        return launch.training_command(
            stage=job.kind.value,
            run_json=job_dir / "run.json",
            gpus=job.gpus,
            nodes=job.nodes,
            hostfile=hostfile,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None


def run_job(job_id: int, *, settings: Settings, sessions: sessionmaker[Session]) -> Outcome:
    # Before the claim: the first job of a worker process may wait for the GPU probe, and the lease
    # is only renewed once the stage runs.
    memory = gpu_memory(settings)
    with sessions() as session:
        lease = claim_job(
            session=session, job_id=job_id, worker_id=worker_id(), lease_seconds=settings.job_lease_seconds
        )
        if lease is None:
            return Outcome(job_id, "not-queued")
        job = session.get(TrainingJob, job_id)
        assert job is not None
        try:
            job_dir, output_dir, config = _prepare(session, settings, job)
            command = _command(settings, job, job_dir)
            refusal = memory_refusal(job, config, memory)
            if refusal is not None:  # like exit 2 of a stage: a retry cannot make it fit
                logger.info("job %s refused before launch: %s", job_id, refusal)
                fence.finish(session, lease, JobState.failed, refusal)
                return Outcome(job_id, "failed", refusal)
            proc = launch.start(command, job_dir=job_dir, env=_child_env(settings))
        except (InputError, OSError) as exc:  # nothing ran: retrying on this worker cannot help
            message = f"could not start the stage: {exc}"
            fence.finish(session, lease, JobState.failed, message)
            return Outcome(job_id, "failed", message)
        logger.info("job %s attempt %s: started %s (pid %s)", job_id, lease.attempt, command, proc.pid)
        return _supervise(session, settings, sessions, lease=lease, job=job, proc=proc, output_dir=output_dir)


def _supervise(
    session: Session,
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    lease: Lease,
    job: TrainingJob,
    proc: subprocess.Popen[bytes],
    output_dir: Path,
) -> Outcome:
    """Follow the stage until it exits or the lease is lost, then settle. Whatever goes wrong here,
    the process group is stopped and the heartbeat ends, so the reaper can hand the job on."""
    stopper = threading.Lock()

    def stop(_reason: str) -> None:
        with stopper:
            launch.stop_group(proc, grace_s=settings.job_kill_grace_seconds)

    heartbeat = Heartbeat(lease=lease, settings=settings, sessions=sessions, on_lost=stop)
    heartbeat.start()
    follower = Follower(job, lease, output_dir.parent, output_dir)
    try:
        next_ingest = time.monotonic() + settings.job_ingest_interval_s
        # Short waits: the exit is noticed at once, not up to an ingest interval later.
        while proc.poll() is None and not heartbeat.lost.wait(EXIT_POLL_S):
            if time.monotonic() < next_ingest:
                continue
            next_ingest = time.monotonic() + settings.job_ingest_interval_s
            try:
                if not follower.ingest(session):
                    stop("the lease is gone")
            except SQLAlchemyError:  # the database is away: the heartbeat's self-stop decides
                session.rollback()
                logger.exception("job %s: ingesting events failed", job.id)
        with stopper:
            rc = proc.wait()
    finally:
        heartbeat.stop()
        if proc.poll() is None:
            stop("the worker failed while following the stage")
        heartbeat.join()
    if heartbeat.lost.is_set() or not follower.owned or not follower.ingest(session):
        cancelled = fence.cancel_if_requested(session, lease)
        return Outcome(job.id, "cancelled" if cancelled else "lost", heartbeat.reason)
    return _settle(session, settings, lease=lease, job=job, rc=rc, follower=follower, output_dir=output_dir)
