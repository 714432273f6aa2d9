"""docs/design/reliability.md A1/A3/A7 over real HTTP: 60 annotators (the typed async client) race for the
same pairs against uvicorn with two worker processes, some retry their submits concurrently with
the same Idempotency-Key, and an admin changes k in the middle. Then, in SQL: nothing lost,
nothing duplicated, no comparison over k, and the lease counters agree with the rows."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest
from sqlalchemy import create_engine

from saferlhf_client import SAFE, Answer, AsyncClient, Client, unsafe
from saferlhf_client.errors import Conflict
from tests.support.live_server import LiveServer, live_server
from tests.support.queue_invariants import assert_queue_invariants
from tests.support.seed import seed_world

pytestmark = pytest.mark.timeout(300)
ANNOTATORS = 60
PAIRS = 24
K = 3


@dataclass
class Ledger:
    acked: dict[int, tuple[int, int]] = field(default_factory=dict)  # annotation -> (annotator, comparison)
    replay_pairs: list[tuple[int, int]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    k_changes: dict[int, tuple[int, int]] = field(default_factory=dict)  # comparison -> (new k, count then)


@pytest.fixture(scope="module")
def server(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("race")
    with live_server(database_url=database_url, artifacts=base, log_dir=base, workers=2) as running:
        yield running


async def annotate(url: str, token: str, project_id: int, ledger: Ledger, seed: int) -> None:
    rng = random.Random(seed)
    async with AsyncClient(url, token) as api:
        me = None
        while (task := await api.claim_next(project_id)) is not None:
            answer = Answer(SAFE, unsafe("violence") if rng.random() < 0.5 else SAFE, "left", "left")
            key = f"{seed}-{task.assignment_id}"
            try:
                if rng.random() < 0.25:  # a client that retries while the first attempt is in flight
                    first, second = await asyncio.gather(
                        api.submit(task.assignment_id, answer, idempotency_key=key),
                        api.submit(task.assignment_id, answer, idempotency_key=key),
                    )
                    ledger.replay_pairs.append((first.id, second.id))
                    done = first
                else:
                    done = await api.submit(task.assignment_id, answer, idempotency_key=key)
            except Conflict as exc:  # k lowered under us: a clear refusal, never a silent drop
                ledger.conflicts.append(exc.code)
                continue
            me = me or (await api.http.get("/api/v1/me", headers=api.headers)).json()["id"]
            ledger.acked[done.id] = (me, done.comparison_id)


async def change_k_midway(url: str, admin_token: str, project_id: int, ledger: Ledger) -> None:
    while len(ledger.acked) < PAIRS:  # about a third of the work is done
        await asyncio.sleep(0.02)
    async with AsyncClient(url, admin_token) as api:
        page = (await api.http.get(f"/api/v1/projects/{project_id}/comparisons", headers=api.headers)).json()
        ids = [c["id"] for c in page["items"]]
        for cid, new_k in [(i, 1) for i in ids[:4]] + [(i, 4) for i in ids[-4:]]:
            response = await api.http.patch(
                f"/api/v1/comparisons/{cid}", json={"overlap_target": new_k}, headers=api.headers
            )
            ledger.k_changes[cid] = (new_k, response.json()["submitted_count"])


def test_sixty_concurrent_annotators_lose_and_duplicate_nothing(
    server: LiveServer, database_url: str
) -> None:
    rows = [
        {"prompt": f"race prompt {i}", "response_0": f"a{i}", "response_1": f"b{i}"} for i in range(PAIRS)
    ]
    world = seed_world(database_url, annotators=ANNOTATORS, overlap=K, tokens=True, data_file=None, rows=rows)
    ledger = Ledger()

    async def run() -> None:
        tokens = [world.tokens[e] for e in world.annotator_emails]
        await asyncio.gather(
            change_k_midway(server.url, world.tokens[world.admin_email], world.project_id, ledger),
            *(annotate(server.url, t, world.project_id, ledger, i) for i, t in enumerate(tokens)),
        )

    asyncio.run(run())
    assert ledger.acked and len(ledger.k_changes) == 8
    assert all(a == b for a, b in ledger.replay_pairs) and ledger.replay_pairs
    assert set(ledger.conflicts) <= {"overlap_reached"}

    def allowed(row) -> int:  # type: ignore[no-untyped-def]
        new_k, count_then = ledger.k_changes.get(row.id, (row.overlap_target, 0))
        return max(new_k, count_then)

    engine = create_engine(database_url)
    with engine.connect() as db:
        per_comparison = assert_queue_invariants(db, world.project_id, ledger.acked, allowed)
    engine.dispose()

    assert sum(r.votes for r in per_comparison) >= PAIRS * K - 8  # nearly all work got done

    with Client(server.url, world.tokens[world.admin_email]) as admin:
        assert sum(1 for _ in admin.votes(world.project_id)) == len(ledger.acked)
