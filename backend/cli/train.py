"""`saferlhf train STAGE --config run.json`: submit a training job to the platform's workers
instead of running the stage on this machine (that is `python -m training STAGE`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from backend.cli.base import fail, main
from backend.domain.enums import JobKind, JobState
from backend.domain.errors import DomainError

FINAL = (JobState.succeeded, JobState.failed, JobState.cancelled)
BAR = 30


def _read_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except json.JSONDecodeError as exc:
        fail(f"config file {path} is not valid JSON: {exc.msg} (line {exc.lineno})")
    if not isinstance(data, dict):
        fail(f"config file {path} must hold a JSON object of key: value pairs")
    return dict(data)


def _inputs(named: dict[str, int | None], extra: tuple[str, ...]) -> dict[str, int]:
    inputs = {key: value for key, value in named.items() if value is not None}
    for item in extra:
        key, eq, value = item.partition("=")
        if not eq or not value.isdigit():
            fail(f"--input takes KEY=ID (e.g. eval_snapshot_id=4), got {item!r}")
        inputs[key] = int(value)
    return inputs


def _bar(job: Any) -> str:
    done = int(BAR * min(1.0, max(0.0, job.progress or 0.0)))
    step = f" step {job.current_step}/{job.total_steps}" if job.total_steps else ""
    eta = f" eta {job.eta_s:.0f}s" if job.eta_s is not None and job.state == JobState.running else ""
    return f"\r[{'#' * done}{'.' * (BAR - done)}] {job.progress:4.0%} {job.state.value}{step}{eta}   "


def _follow(job_id: int, poll_s: float) -> JobState:
    from backend.db.models import TrainingJob
    from backend.db.session import session_scope

    while True:
        with session_scope() as session:
            job = session.get(TrainingJob, job_id)
            assert job is not None
            click.echo(_bar(job), nl=False, err=True)
            if job.state in FINAL:
                click.echo("", err=True)
                if job.error:
                    click.echo(f"error: {job.error}", err=True)
                return job.state
        time.sleep(poll_s)


@main.command(
    "train", help="Submit a training job (STAGE: sft, reward, cost, ppo, ppo-lag, ...) to the workers."
)
@click.argument("stage", type=click.Choice([k.value for k in JobKind]))
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="run.json of the stage's options"
)
@click.option("--snapshot", "snapshot_id", type=int, help="dataset snapshot id (training data or prompts)")
@click.option("--base-model", "base_model_id", type=int, help="registered model to start from")
@click.option("--reward-model", "reward_model_id", type=int, help="registered reward model")
@click.option("--cost-model", "cost_model_id", type=int, help="registered cost model")
@click.option("--input", "extra", multiple=True, help="any other input as KEY=ID (e.g. reference_model_id=3)")
@click.option("--project", "project_id", type=int, help="project id the job belongs to")
@click.option("--gpus", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--nodes", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--wait", is_flag=True, help="follow progress; exit 0 if the job succeeds, 1 otherwise")
@click.option("--poll", "poll_s", default=2.0, show_default=True, help="seconds between progress reads")
def train_cmd(
    stage: str,
    config_path: str | None,
    snapshot_id: int | None,
    base_model_id: int | None,
    reward_model_id: int | None,
    cost_model_id: int | None,
    extra: tuple[str, ...],
    project_id: int | None,
    gpus: int,
    nodes: int,
    wait: bool,
    poll_s: float,
) -> None:
    from backend.config import get_settings
    from backend.db.session import session_scope
    from backend.domain import task_names
    from backend.queue import send
    from backend.services.jobs_submit import mark_published, submit_job

    settings = get_settings()
    named = {
        "snapshot_id": snapshot_id,
        "base_model_id": base_model_id,
        "reward_model_id": reward_model_id,
        "cost_model_id": cost_model_id,
    }
    try:
        with session_scope() as session:
            result = submit_job(
                session=session,
                caller=None,
                kind=JobKind(stage),
                config=_read_config(config_path),
                inputs=_inputs(named, extra),
                project_id=project_id,
                gpus=gpus,
                nodes=nodes,
                queue=settings.job_queue,
            )
            job_id, created = result.job.id, result.created
    except DomainError as exc:
        fail(exc.detail)
    if created:
        try:
            send(task_names.RUN_TRAINING_JOB, job_id, queue=settings.job_queue)
            with session_scope() as session:
                mark_published(session=session, job_id=job_id)
        except Exception as exc:  # the job is committed; the reaper publishes it again
            click.echo(
                f"warning: could not publish the job now ({type(exc).__name__}); the reaper will", err=True
            )
    what = "submitted job" if created else "an identical job already succeeded: job"
    click.echo(f"{what} {job_id}: {settings.base_url.rstrip('/')}/admin/jobs/{job_id}")
    if wait:
        raise SystemExit(0 if _follow(job_id, poll_s) == JobState.succeeded else 1)
