"""docs/design/reliability.md A5, as a crash: annotators work against a real `saferlhf serve`, the
postmaster of its embedded Postgres is killed with SIGKILL mid-load and started again, and every
answer and every lease the API acknowledged (a 2xx the client received) is still stored.

With `synchronous_commit=off`, Postgres acknowledges a commit before its WAL is on disk, and such a
crash loses the last fraction of a second of acknowledged work (scripts/devservices.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from saferlhf_client import SAFE, Answer, AsyncClient
from saferlhf_client.errors import ApiError, Conflict, NotFound
from tests.conftest import REPO_ROOT
from tests.support.databases import create_database, migrate
from tests.support.embedded import services_dir
from tests.support.live_server import live_server
from tests.support.seed import seed_world

pytestmark = pytest.mark.timeout(240)
ANNOTATORS = 16
PAIRS = 40
K = 2
CRASH_AFTER = 20  # acknowledged submits before the kill: the load is in full swing
LOAD_DEADLINE_S = 90.0  # a safety net only; the load normally ends when every pair is done


@dataclass
class Ledger:
    claimed: set[int] = field(default_factory=set)  # assignments handed out with a 2xx
    acked: dict[int, int] = field(default_factory=dict)  # annotation -> assignment, 2xx received
    acked_at_crash: int = -1
    failures: int = 0  # requests refused or cut off while Postgres was down


@dataclass(frozen=True)
class Embedded:
    state: Path
    server_url: str

    def up(self) -> str:
        result = subprocess.run(
            [sys.executable, str(REPO_ROOT / "scripts" / "devservices.py"), "up", "--state", str(self.state)]
            + ["--pg-port", "auto", "--redis-port", "auto"],
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def postmaster_pid(self) -> int:
        return int((self.state / "pg" / "postmaster.pid").read_text().split()[0])


@pytest.fixture
def embedded() -> Iterator[Embedded]:
    with services_dir() as root:
        probe = Embedded(root / "svc", "")
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in probe.up().splitlines()
            if line.startswith("export ")
        )
        yield Embedded(root / "svc", exports["DATABASE_URL"].strip("'"))


async def annotate(url: str, token: str, project_id: int, ledger: Ledger, stop: asyncio.Event) -> None:
    """Claim and submit until nothing is left, retrying through the outage as a browser's user would
    (the same Idempotency-Key each time, so a retry never stores an answer twice)."""
    async with AsyncClient(url, token, timeout=15) as api:
        while not stop.is_set():
            try:
                task = await api.claim_next(project_id)
            except (ApiError, httpx.HTTPError):
                ledger.failures += 1
                await asyncio.sleep(0.1)
                continue
            if task is None:
                return
            ledger.claimed.add(task.assignment_id)
            answer = Answer(SAFE, SAFE, "left", "left")
            while not stop.is_set():
                try:
                    done = await api.submit(
                        task.assignment_id, answer, idempotency_key=f"crash-{task.assignment_id}", retries=0
                    )
                except (Conflict, NotFound):
                    break  # the lease is gone (it must not be: the check below would say so)
                except (ApiError, httpx.HTTPError):
                    ledger.failures += 1
                    await asyncio.sleep(0.1)
                    continue
                ledger.acked[done.id] = task.assignment_id
                break


async def crash_midway(embedded: Embedded, ledger: Ledger) -> None:
    while len(ledger.acked) < CRASH_AFTER:
        await asyncio.sleep(0.005)
    os.kill(embedded.postmaster_pid(), signal.SIGKILL)
    ledger.acked_at_crash = len(ledger.acked)
    await asyncio.to_thread(embedded.up)  # what an operator (or a restart policy) does next


def test_every_acknowledged_submit_and_lease_survives_kill_9_of_the_postmaster(
    embedded: Embedded, tmp_path: Path
) -> None:
    database_url = create_database(embedded.server_url, "crash")
    migrate(database_url, "head")
    rows = [{"prompt": f"crash {i}", "response_0": f"a{i}", "response_1": f"b{i}"} for i in range(PAIRS)]
    world = seed_world(database_url, annotators=ANNOTATORS, overlap=K, tokens=True, data_file=None, rows=rows)
    ledger = Ledger()
    with live_server(database_url=database_url, artifacts=tmp_path, log_dir=tmp_path) as server:

        async def run() -> None:
            stop = asyncio.Event()
            tokens = [world.tokens[e] for e in world.annotator_emails]
            load = asyncio.gather(*(annotate(server.url, t, world.project_id, ledger, stop) for t in tokens))
            await crash_midway(embedded, ledger)
            try:
                await asyncio.wait_for(asyncio.shield(load), LOAD_DEADLINE_S)
            finally:
                stop.set()
                await load

        asyncio.run(run())

    assert ledger.acked_at_crash >= CRASH_AFTER
    assert len(ledger.acked) > ledger.acked_at_crash  # the server served again after the restart
    engine = create_engine(database_url)
    with engine.connect() as db:
        stored = {a: s for a, s in db.execute(text("SELECT id, assignment_id FROM annotation"))}
        leases = set(db.execute(text("SELECT id FROM assignment")).scalars())
    engine.dispose()
    lost = {a: s for a, s in ledger.acked.items() if stored.get(a) != s}
    assert not lost, f"{len(lost)} of {len(ledger.acked)} acknowledged submits lost: {sorted(lost)}"
    vanished = ledger.claimed - leases
    assert not vanished, f"{len(vanished)} acknowledged leases vanished: {sorted(vanished)}"
