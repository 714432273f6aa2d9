#!/usr/bin/env python3
"""Annotation load benchmark: N simulated annotators claim a pair, think, and submit, over real
HTTP against the running app on Postgres; then every acknowledged submit is checked on the server.

By default each submit also leases the next pair (`/submit-and-next`, one request per pair, as
the annotator page does); `--separate-claim` claims every pair with a request of its own.

    .venv/bin/python benchmarks/annotation_load.py                 # starts everything itself
    .venv/bin/python benchmarks/annotation_load.py --url URL --admin-token TOKEN

Without --url it uses the Postgres at DATABASE_URL (a fresh database on that server) or starts the
embedded Postgres and Valkey in a temporary directory, applies the migrations, creates an admin,
and serves the app with `saferlhf serve --workers N`. Project, annotators, their API tokens and the pairs
are then created through the REST API in either mode.

It prints submits/s, claim and submit latency percentiles, lost and duplicated. The last line is:
    annotation_submits_per_s=<x> p99_ms=<x> lost=<n> duplicated=<n>
where p99_ms is the 99th percentile over all claim and submit requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._annotation_load_run import run_load, summarize, verify  # noqa: E402

PYTHON = sys.executable


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running app; needs --admin-token")
    p.add_argument("--admin-token", help="API token of an admin (with --url)")
    p.add_argument("--annotators", type=int, default=64, help="concurrent simulated annotators")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    p.add_argument("--think-ms", type=float, default=100.0, help="mean pause between claim and submit")
    p.add_argument(
        "--separate-claim",
        action="store_true",
        help="claim each pair with its own request instead of /submit-and-next (what the page does)",
    )
    p.add_argument("--pairs", type=int, default=6000, help="comparisons to create")
    p.add_argument("--overlap", type=int, default=3, help="annotations per comparison (k)")
    p.add_argument("--workers", type=int, default=2, help="app worker processes when the app is started here")
    return p.parse_args()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def services() -> Iterator[str]:
    """A database URL: a fresh database on DATABASE_URL's server, or embedded servers."""
    import psycopg
    from sqlalchemy.engine import make_url

    state = Path(tempfile.mkdtemp(prefix="annotation-load-"))
    started = False
    base = os.environ.get("DATABASE_URL")
    if base:
        state.rmdir()
    else:
        state.chmod(0o755)  # as root, Postgres runs as nobody and must reach its data directory
        out = subprocess.run(
            [
                PYTHON,
                "scripts/devservices.py",
                "up",
                "--state",
                str(state),
                "--pg-port",
                "auto",
                "--redis-port",
                "auto",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        env = dict(
            line.removeprefix("export ").split("=", 1)
            for line in out.splitlines()
            if line.startswith("export ")
        )
        base = env["DATABASE_URL"].strip("'")
        os.environ["REDIS_URL"] = env["REDIS_URL"].strip("'")
        started = True
    server = make_url(base)
    name = f"annotation_load_{uuid.uuid4().hex[:8]}"
    libpq = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if started:
            subprocess.run(
                [PYTHON, "scripts/devservices.py", "down", "--state", str(state)], cwd=REPO, check=False
            )
            shutil.rmtree(state, ignore_errors=True)


def bootstrap_admin(database_url: str) -> str:
    """Migrate, then create an admin and an admin API token directly (there is no one to ask)."""
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run(
        [str(Path(PYTHON).parent / "alembic"), "upgrade", "head"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from backend.domain.enums import UserRole
    from backend.edge.deps import ROLE_SCOPES
    from backend.services.tokens import create_token
    from backend.services.users import create_user

    engine = create_engine(database_url)
    with Session(engine, expire_on_commit=False) as session:
        admin = create_user(
            session=session,
            email="bench-admin@example.test",
            password=secrets.token_urlsafe(16),
            role=UserRole.admin,
        )
        allowed = ROLE_SCOPES[UserRole.admin]
        token = create_token(
            session=session, actor=admin, owner=admin, name="bench", scopes=list(allowed), allowed=allowed
        )
    engine.dispose()
    return token.secret


class CpuMeter:
    """CPU seconds spent by the app, Postgres, this client and everything else on the machine
    during the load: the benchmark shares its cores, and the numbers mean little without this."""

    def __init__(self, app_pid: int | None) -> None:
        import psutil

        self.psutil = psutil
        self.app = psutil.Process(app_pid) if app_pid else None

    def _snapshot(self) -> dict[str, float]:
        ps = self.psutil
        app_procs = [self.app, *self.app.children(recursive=True)] if self.app else []
        app = sum(p.cpu_times().user + p.cpu_times().system for p in app_procs)
        pg = 0.0
        for proc in ps.process_iter(["name", "cpu_times"]):
            if proc.info["name"] == "postgres" and proc.info["cpu_times"]:
                pg += proc.info["cpu_times"].user + proc.info["cpu_times"].system
        me = ps.Process().cpu_times()
        total = ps.cpu_times()
        busy = total.user + total.system + getattr(total, "nice", 0.0)
        return {"app": app, "postgres": pg, "client": me.user + me.system, "machine": busy}

    def __enter__(self) -> CpuMeter:
        self.start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snapshot()
        self.used = {k: end[k] - self.start[k] for k in end}
        known = self.used["app"] + self.used["postgres"] + self.used["client"]
        self.used["other"] = max(self.used["machine"] - known, 0.0)


@contextlib.contextmanager
def app_server(database_url: str, workers: int, annotators: int = 32) -> Iterator[str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    artifacts = tempfile.mkdtemp(prefix="annotation-load-artifacts-")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "ARTIFACTS_DIR": artifacts,
        # One connection per concurrent request a worker may serve, so no connection is opened
        # and closed per request (SQLAlchemy's overflow connections are not kept).
        "DB_POOL_SIZE": os.environ.get("DB_POOL_SIZE", str(max(10, annotators // workers + 4))),
    }
    # `saferlhf serve`, as deployed: with several workers, each one accepts on its own
    # SO_REUSEPORT socket (backend/serving.py).
    args = [
        PYTHON,
        "-m",
        "backend.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True)
    os.environ["ANNOTATION_LOAD_APP_PID"] = str(proc.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("the app did not start")
        yield url
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(artifacts, ignore_errors=True)


def pairs_file(n: int) -> bytes:
    rows = []
    for i in range(n):
        rows.append(
            {
                "prompt": f"Benchmark prompt {i}: how should I answer question number {i}?",
                "response_0": f"A careful, helpful answer to question {i}.",
                "response_1": f"A short answer to question {i}, possibly unhelpful.",
            }
        )
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def setup_project(url: str, admin_token: str, args: argparse.Namespace) -> tuple[int, list[str]]:
    headers = {"Authorization": f"Bearer {admin_token}"}
    tag = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=url, headers=headers, timeout=120) as api:
        body = {"name": f"load-{tag}", "default_overlap": args.overlap, "gold_rate": 0, "lease_seconds": 600}
        project = api.post("/api/v1/projects", json=body).raise_for_status().json()
        tokens = []
        for i in range(args.annotators):
            user = api.post(
                "/api/v1/users", json={"email": f"load{i}-{tag}@example.test", "role": "annotator"}
            )
            uid = user.raise_for_status().json()["id"]
            api.put(f"/api/v1/projects/{project['id']}/members/{uid}").raise_for_status()
            token = api.post(f"/api/v1/users/{uid}/tokens", json={"name": "load", "scopes": ["annotate"]})
            tokens.append(token.raise_for_status().json()["token"])
        files = {"file": ("pairs.jsonl", io.BytesIO(pairs_file(args.pairs)), "application/x-ndjson")}
        imported = api.post(
            f"/api/v1/projects/{project['id']}/imports", files=files, data={"kind": "pku_saferlhf"}
        )
        imported.raise_for_status()
    return project["id"], tokens


def report(args: argparse.Namespace, ledger: object, elapsed: float, checks: dict[str, int]) -> None:
    from benchmarks._annotation_load_run import Ledger

    assert isinstance(ledger, Ledger)
    submits = len(ledger.acked)
    rate = submits / elapsed if elapsed else 0.0
    claims, subs = summarize(ledger.claims_ms), summarize(ledger.submits_ms)
    overall = summarize(ledger.claims_ms + ledger.submits_ms)
    print(f"annotators={args.annotators} think_ms={args.think_ms:g} duration_s={elapsed:.1f}", end=" ")
    print(f"overlap={args.overlap} mode={'separate-claim' if args.separate_claim else 'submit-and-next'}")
    print(f"submits={submits} submits_per_s={rate:.1f} claims={len(ledger.claims_ms)}")
    for name, s in (("claim", claims), ("submit", subs), ("all", overall)):
        print(
            f"{name:7s} p50={s['p50']:.1f}ms p95={s['p95']:.1f}ms p99={s['p99']:.1f}ms mean={s['mean']:.1f}ms"
        )
    errors = ledger.errors or "none"
    print(f"replays: {ledger.replays_ok} identical, {ledger.replays_bad} wrong; errors: {errors}")
    print(f"server: {checks['votes_on_server']} votes, {checks['over_k']} comparisons over k")
    print(
        f"annotation_submits_per_s={rate:.1f} p99_ms={overall['p99']:.1f} "
        f"lost={checks['lost']} duplicated={checks['duplicated'] + ledger.replays_bad}"
    )


def benchmark(url: str, admin_token: str, args: argparse.Namespace) -> None:
    log("creating the project, annotators and pairs through the API ...")
    project_id, tokens = setup_project(url, admin_token, args)
    log(f"running {args.annotators} annotators for {args.duration:g}s ...")
    app_pid = int(os.environ.get("ANNOTATION_LOAD_APP_PID", "0")) or None
    with CpuMeter(app_pid) as meter:
        ledger, elapsed = asyncio.run(
            run_load(url, tokens, project_id, args.duration, args.think_ms / 1000, not args.separate_claim)
        )
    checks = verify(url, admin_token, project_id, ledger)
    cores = os.cpu_count() or 1
    used = meter.used
    per = 1000 / max(len(ledger.acked), 1)
    print(
        f"cpu over {elapsed:.1f}s on {cores} cores: app {used['app']:.1f}s, "
        f"postgres {used['postgres']:.1f}s, client {used['client']:.1f}s, "
        f"other processes {used['other']:.1f}s; per submit (with its claim): "
        f"app {used['app'] * per:.2f}ms, postgres {used['postgres'] * per:.2f}ms"
    )
    report(args, ledger, elapsed, checks)


def main() -> None:
    args = parse_args()
    if args.url:
        if not args.admin_token:
            sys.exit("--url needs --admin-token (an admin's API token)")
        benchmark(args.url.rstrip("/"), args.admin_token, args)
        return
    with services() as database_url:
        token = bootstrap_admin(database_url)
        with app_server(database_url, args.workers, args.annotators) as url:
            benchmark(url, token, args)


if __name__ == "__main__":
    main()
