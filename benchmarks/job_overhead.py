"""What running a stage through the platform costs over running it by hand.

The same reward-model training (the tiny model on the toy world's preference pairs, about a minute
on a CPU) runs side by side, alternating, ``--reps`` times each:

* ``cli``: ``python -m training reward --config run.json``, timed from start to exit;
* ``platform``: ``POST /api/v1/jobs`` (through the ASGI app in this process) to a real
  ``celery worker`` on the real broker and Postgres, timed from the submission to the moment the
  job is succeeded with its model registered (one transaction), polled every 0.1 s.

The platform run does everything the CLI run does plus: the broker round trip, claiming the row,
resolving the inputs, run.json, the heartbeat, ingesting events.jsonl into Postgres while it runs,
and copying and hashing the model into the registry. Each repetition uses a fresh seed, so the
platform never answers with an identical succeeded job.

``metric_ingest_rows_per_s`` is the ingestion path alone (digest + fenced upsert, worker/ingest.py)
over a synthetic events.jsonl of ``--ingest-steps`` steps x 10 metrics, in one pass.

Needs DATABASE_URL and REDIS_URL (as `make test` sets them; a scratch database is created and
dropped). The last line is ``platform_over_cli_time=<median ratio> metric_ingest_rows_per_s=<n>``.

Usage: ``python benchmarks/job_overhead.py [--reps 3] [--steps 900] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def build_inputs(work: Path) -> tuple[Path, Path]:
    from training.config import InitTinyConfig
    from training.models.tiny import run_init_tiny
    from training.toyworld import WorldConfig, generate_world

    world, model = work / "world", work / "tiny"
    if not (world / "pairs_train.jsonl").exists():
        generate_world(world, WorldConfig(noise=0.1, seed=0))
    if not (model / "config.json").exists():
        run_init_tiny(InitTinyConfig(out=str(model), corpus=str(world / "sft.jsonl")))
        for leftover in ("events.jsonl", "summary.json"):
            (model / leftover).unlink(missing_ok=True)
    return world, model


def stage_config(steps: int, seed: int) -> dict[str, Any]:
    return {
        "max_steps": steps,
        "epochs": 100,  # max_steps ends the run (one epoch of the toy pairs is 250 steps)
        "per_device_train_batch_size": 16,
        "max_length": 128,
        "logging_steps": 1,
        "save_steps": 100,
        "num_threads": 1,
        "device": "cpu",
        "seed": seed,
    }


def run_cli(work: Path, world: Path, model: Path, steps: int, seed: int) -> float:
    out = work / f"cli-{seed}-{uuid.uuid4().hex[:6]}"  # fresh: resume=auto would skip a finished run
    config = {
        **stage_config(steps, seed),
        "model_name_or_path": str(model),
        "train_data": str(world / "pairs_train.jsonl"),
        "output_dir": str(out),
    }
    run_json = out.with_suffix(".json")
    run_json.write_text(json.dumps(config))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "training", "reward", "--config", str(run_json)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the CLI run failed:\n{done.stderr[-2000:]}")
    shutil.rmtree(out)
    return elapsed


class Platform:
    """A scratch database, an artifacts root, a worker on its own queue, and the app."""

    def __init__(self, work: Path, world: Path, model: Path) -> None:
        from tests.support.databases import create_database, migrate

        self.server = os.environ["DATABASE_URL"]
        self.url = create_database(self.server, f"bench_jobs_{uuid.uuid4().hex[:8]}")
        migrate(self.url, "head")
        self.queue = f"bench-{uuid.uuid4().hex[:8]}"
        self.env = {
            "DATABASE_URL": self.url,
            "ARTIFACTS_DIR": str(work / "artifacts"),
            "JOB_QUEUE": self.queue,
            "ENVIRONMENT": "test",
        }
        os.environ.update(self.env)
        from backend.config import Settings

        self.settings = Settings()
        self._seed(world, model)
        self.worker = self._start_worker(work)

    def _seed(self, world: Path, model: Path) -> None:
        from backend.db.models import DatasetSnapshot
        from backend.db.session import make_engine
        from backend.domain.enums import ArtifactKind, UserRole
        from backend.services.models import register_model_dir
        from tests.factories import make_user
        from tests.factories.annotation import make_project, token_headers

        self.engine = make_engine(self.settings)
        from sqlalchemy.orm import Session

        with Session(self.engine, expire_on_commit=False) as session:
            admin = make_user(session, role=UserRole.admin)
            project = make_project(session, admin)
            self.headers = token_headers(session, admin)
            data = (world / "pairs_train.jsonl").read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            folder = Path(self.settings.artifacts_dir) / "snapshots" / sha
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "data.jsonl").write_bytes(data)
            snapshot = DatasetSnapshot(
                project_id=project.id,
                content_sha256=sha,
                storage_key=f"snapshots/{sha}",
                row_count=data.count(b"\n"),
                vote_count=0,
                size_bytes=len(data),
            )
            session.add(snapshot)
            base = register_model_dir(
                session=session,
                settings=self.settings,
                kind=ArtifactKind.policy,
                source_dir=model,
                name="tiny",
            )
            session.commit()
            self.project_id, self.snapshot_id, self.base_id = project.id, snapshot.id, base.id

    def _start_worker(self, work: Path) -> subprocess.Popen[bytes]:
        log = open(work / "worker.log", "ab")  # noqa: SIM115 (closed with the process)
        command = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", self.queue]
        command += ["-c", "1", "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle"]
        env = {**os.environ, **self.env, "C_FORCE_ROOT": "1"}
        proc = subprocess.Popen(
            command + ["-n", f"{self.queue}@%h"], cwd=REPO, env=env, stdout=log, stderr=log
        )
        from backend.domain import task_names
        from backend.queue import client

        client.cache_clear()
        client().send_task(task_names.PING, queue=self.queue).get(timeout=120)  # the worker is up
        return proc

    def run(self, steps: int, seed: int) -> tuple[float, int]:
        from fastapi.testclient import TestClient
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from backend.db.models import Metric, ModelArtifact, TrainingJob
        from backend.main import create_app

        with TestClient(create_app(self.settings)) as api:
            body = {
                "kind": "reward",
                "config": stage_config(steps, seed),
                "inputs": {"snapshot_id": self.snapshot_id, "base_model_id": self.base_id},
                "project_id": self.project_id,
            }
            start = time.perf_counter()
            job_id = api.post("/api/v1/jobs", json=body, headers=self.headers).json()["id"]
            with Session(self.engine) as session:
                while True:
                    job = session.get(TrainingJob, job_id, populate_existing=True)
                    assert job is not None
                    if job.state.value in ("failed", "cancelled"):
                        raise SystemExit(f"the platform run failed: {job.error}")
                    if job.state.value == "succeeded":
                        break
                    session.rollback()
                    time.sleep(0.1)
                elapsed = time.perf_counter() - start
                assert session.scalar(select(ModelArtifact.id).where(ModelArtifact.training_job_id == job_id))
                rows = session.scalar(select(func.count()).where(Metric.job_id == job_id))
        return elapsed, int(rows or 0)

    def ingest_rate(self, steps: int, work: Path) -> tuple[int, float]:
        from sqlalchemy.orm import Session

        from backend.domain.enums import JobKind
        from backend.services.jobs import claim_job, create_job
        from worker.ingest import EventTail, digest, store

        events = work / "ingest-events.jsonl"
        with events.open("w") as handle:
            for step in range(steps):
                metrics = {f"train/m{i}": step * 0.001 + i for i in range(10)}
                line = {"v": 1, "seq": step, "time": 0.0, "stage": "reward", "type": "metric", "step": step}
                handle.write(json.dumps({**line, "metrics": metrics}) + "\n")
        with Session(self.engine, expire_on_commit=False) as session:
            job = create_job(session=session, kind=JobKind.reward, config={}, queue="none")
            session.commit()
            lease = claim_job(session=session, job_id=job.id, worker_id="bench", lease_seconds=600)
            assert lease is not None
            start = time.perf_counter()
            batch = digest(EventTail(events).read_new(), from_seq=0)
            assert store(session, lease=lease, batch=batch, output_key=None, tail=None)
            elapsed = time.perf_counter() - start
        return steps * 10, elapsed

    def close(self) -> None:
        from tests.support.databases import drop_database

        self.worker.terminate()
        self.worker.wait(timeout=30)
        self.engine.dispose()
        drop_database(self.server, self.url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=900, help="optimizer steps of each run")
    parser.add_argument("--ingest-steps", type=int, default=5000)
    parser.add_argument("--workdir", type=Path, default=REPO / ".dev" / "bench" / "job_overhead")
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    world, model = build_inputs(work)
    platform = Platform(work / f"run-{uuid.uuid4().hex[:6]}", world, model)
    cli_times, platform_times = [], []
    try:
        for rep in range(args.reps):
            seed = 1000 + rep
            order = ("cli", "platform") if rep % 2 == 0 else ("platform", "cli")
            for side in order:
                if side == "cli":
                    cli_times.append(run_cli(work, world, model, args.steps, seed))
                    print(f"rep {rep + 1} cli       {cli_times[-1]:7.1f} s", flush=True)
                else:
                    elapsed, rows = platform.run(args.steps, seed)
                    platform_times.append(elapsed)
                    print(f"rep {rep + 1} platform  {elapsed:7.1f} s  ({rows} metric rows)", flush=True)
        rows, seconds = platform.ingest_rate(args.ingest_steps, work)
    finally:
        platform.close()
    cli, plat = statistics.median(cli_times), statistics.median(platform_times)
    print(
        f"median cli {cli:.1f} s, platform {plat:.1f} s (submission to registered model), {args.steps} steps"
    )
    print(f"ingest: {rows} metric rows in {seconds:.2f} s")
    print(f"platform_over_cli_time={plat / cli:.3f} metric_ingest_rows_per_s={rows / seconds:.0f}")


if __name__ == "__main__":
    main()
