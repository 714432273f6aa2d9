"""A real platform for training-job tests: the test database, the real broker, real `celery worker`
processes on a queue of their own, a registered tiny base model and a dataset snapshot of toy-world
preference pairs. Job timings are seconds (settings), so leases expire and reapers act quickly."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support.processes import PYTHON, child_env, start, stop
from tests.training.conftest import micro_model, toy_world  # noqa: F401 (fixtures)

# Fast enough for tests; the worker's self-stop (3 s) stays shorter than the lease (6 s).
JOB_TIMINGS = {
    "JOB_HEARTBEAT_SECONDS": "0.5",
    "JOB_LEASE_SECONDS": "6",
    "JOB_SELF_STOP_SECONDS": "3",
    "JOB_KILL_GRACE_SECONDS": "3",
    "JOB_INGEST_INTERVAL_S": "0.3",
    "JOB_REPUBLISH_AFTER_S": "2",
    "JOB_REAPER_INTERVAL_S": "1",
}
# A short reward-model run of the micro model on CPU: seconds, with checkpoints every 10 steps.
FAST_CONFIG: dict[str, Any] = {
    "max_steps": 30,
    "epochs": 1,
    "per_device_train_batch_size": 8,
    "max_length": 64,
    "logging_steps": 1,
    "save_steps": 10,
    "num_threads": 1,
    "device": "cpu",
}


@dataclass
class Platform:
    env: dict[str, str]
    settings: Any
    sessions: sessionmaker[Session]
    artifacts: Path
    queue: str
    project_id: int
    snapshot_id: int
    base_model_id: int
    admin_headers: dict[str, str]

    def inputs(self) -> dict[str, int]:
        return {"snapshot_id": self.snapshot_id, "base_model_id": self.base_model_id}

    def job(self, job_id: int) -> Any:
        from backend.db.models import TrainingJob

        with self.sessions() as session:
            return session.get(TrainingJob, job_id)

    def wait_for(self, job_id: int, check: Callable[[Any], bool], *, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if check(job):
                return job
            time.sleep(0.2)
        job = self.job(job_id)
        log = (
            (self.artifacts / f"jobs/{job_id}/stderr.log").read_text(errors="replace")[-3000:]
            if (self.artifacts / f"jobs/{job_id}/stderr.log").exists()
            else ""
        )
        raise TimeoutError(f"job {job_id} never {what}: state={job.state} error={job.error}\n{log}")

    def submit(self, config: dict[str, Any], *, publish: bool = True, **extra: Any) -> int:
        """Submit and publish a job; each test gives its own seed, so no test is answered with an
        identical job another test already ran."""
        from backend.db.models import User
        from backend.domain.enums import JobKind, UserRole
        from backend.services.jobs_submit import mark_published, submit_job

        with self.sessions() as session:
            admin = session.query(User).filter(User.role == UserRole.admin).first()
            result = submit_job(
                session=session,
                caller=admin,
                kind=JobKind(extra.pop("kind", "reward")),
                config=config,
                inputs=extra.pop("inputs", self.inputs()),
                project_id=self.project_id,
                queue=self.queue,
                **extra,
            )
            if publish:
                from backend.domain import task_names
                from backend.queue import send

                send(task_names.RUN_TRAINING_JOB, result.job.id, queue=self.queue)
                mark_published(session=session, job_id=result.job.id)
            assert result.created, "an identical job already succeeded in this module: vary the seed"
            return int(result.job.id)


def register_snapshot(session: Session, project_id: int, artifacts: Path, rows: Path) -> int:
    from backend.db.models import DatasetSnapshot

    data = rows.read_bytes()
    sha = hashlib.sha256(data + str(uuid.uuid4()).encode()).hexdigest()
    folder = artifacts / "snapshots" / sha
    folder.mkdir(parents=True)
    (folder / "data.jsonl").write_bytes(data)
    snapshot = DatasetSnapshot(
        project_id=project_id,
        content_sha256=sha,
        storage_key=f"snapshots/{sha}",
        row_count=data.count(b"\n"),
        vote_count=0,
        size_bytes=len(data),
    )
    session.add(snapshot)
    session.commit()
    return int(snapshot.id)


@pytest.fixture(scope="module")
def platform(
    database_url: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    toy_world: Path,  # noqa: F811 (the imported fixture, requested by name)
    micro_model: Path,  # noqa: F811
) -> Iterator[Platform]:
    from backend.config import Settings, get_settings
    from backend.db.session import make_engine
    from backend.domain.enums import ArtifactKind, UserRole
    from backend.queue import client
    from backend.services.models import register_model_dir
    from tests.factories import make_user
    from tests.factories.annotation import make_project, token_headers

    artifacts = tmp_path_factory.mktemp("job-artifacts")
    queue = f"jobs-{uuid.uuid4().hex[:8]}"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ARTIFACTS_DIR": str(artifacts),
        "JOB_QUEUE": queue,
        "ENVIRONMENT": "test",
        **JOB_TIMINGS,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    client.cache_clear()
    settings = Settings()
    engine = make_engine(settings)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    with sessions() as session:
        admin = make_user(session, role=UserRole.admin)
        project = make_project(session, admin)
        headers = token_headers(session, admin)
        session.commit()
        snapshot_id = register_snapshot(session, project.id, artifacts, toy_world / "pairs_train.jsonl")
        base = register_model_dir(
            session=session,
            settings=settings,
            kind=ArtifactKind.policy,
            source_dir=_clean_model_dir(micro_model, tmp_path_factory.mktemp("base")),
            name="micro base",
            project_id=project.id,
        )
        session.commit()
        yield Platform(env, settings, sessions, artifacts, queue, project.id, snapshot_id, base.id, headers)
    engine.dispose()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()
    client.cache_clear()


def _clean_model_dir(source: Path, target: Path) -> Path:
    """The model files of an init-tiny output, without its run records."""
    for path in source.iterdir():
        if path.is_file() and path.name not in ("events.jsonl", "summary.json"):
            shutil.copy2(path, target / path.name)
    return target


def worker_command(queue: str, name: str, *, concurrency: int = 1) -> list[str]:
    """`celery worker` on ``queue``: prefork pool, prefetch 1, no gossip or mingle (a test's
    workers must not wait for each other)."""
    return [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-Q",
        queue,
        "-c",
        str(concurrency),
        "--prefetch-multiplier",
        "1",
        "--pool",
        "prefork",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
        "-n",
        name,
    ]


@pytest.fixture
def start_worker(platform: Platform, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `celery worker` processes on the platform's queue (concurrency 1, prefetch 1)."""
    started: list[subprocess.Popen[bytes]] = []

    def _start(name: str = "w1", **extra_env: str) -> subprocess.Popen[bytes]:
        proc = start(
            worker_command(platform.queue, f"{name}-{platform.queue}@%h"),
            env=child_env(**platform.env, **extra_env),
            log=tmp_path / f"worker-{name}.log",
        )
        started.append(proc)
        return proc

    yield _start
    for proc in started:
        stop(proc)


def training_pids(run_json: Path) -> list[int]:
    """Processes whose command line names this run.json (the stage of one job)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(run_json).encode() in cmdline:
            pids.append(int(entry.name))
    return pids
