"""The load itself: simulated annotators over real HTTP, each keeping a ledger of what the server
acknowledged, and the checks of that ledger against the server afterwards."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks._raw_http import RawConnection

ANSWERS = (
    {"left": {"is_safe": True}, "right": {"is_safe": True}, "helpfulness": "left", "harmlessness": "equal"},
    {
        "left": {"is_safe": True},
        "right": {"is_safe": False, "harm_categories": ["violence"], "severity": 2},
        "helpfulness": "right",
        "harmlessness": "left",
    },
    {"left": {"is_safe": True}, "right": {"is_safe": True}, "helpfulness": "equal", "harmlessness": "right"},
)


@dataclass
class Ledger:
    claims_ms: list[float] = field(default_factory=list)
    submits_ms: list[float] = field(default_factory=list)
    acked: dict[int, int] = field(default_factory=dict)  # annotation id -> assignment id
    replays_ok: int = 0
    replays_bad: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def random_answer(rng: random.Random) -> bytes:
    body = {**rng.choice(ANSWERS), "confidence": rng.randint(1, 5), "time_spent_ms": rng.randint(1000, 9000)}
    return json.dumps(body).encode()


async def annotator(
    url: str,
    token: str,
    project_id: int,
    deadline: float,
    think_s: float,
    ledger: Ledger,
    seed: int,
    combined: bool = True,
) -> None:
    """Claim, think, submit, repeatedly. With `combined`, the submit also leases the next pair
    (`/submit-and-next`, what the annotator page does), so only the first claim is a request of
    its own; otherwise every pair costs a claim request and a submit request."""
    rng = random.Random(seed)
    conn = RawConnection(url)
    headers = {"Authorization": f"Bearer {token}"}
    action = "submit-and-next" if combined else "submit"
    try:
        assignment = await claim(conn, headers, project_id, ledger)
        while assignment is not None and time.perf_counter() < deadline:
            if think_s:
                await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))
            submit_headers = {
                **headers,
                "Idempotency-Key": uuid.uuid4().hex,
                "Content-Type": "application/json",
            }
            path = f"/api/v1/assignments/{assignment}/{action}"
            payload = random_answer(rng)
            start = time.perf_counter()
            response = await conn.request("POST", path, submit_headers, payload)
            ledger.submits_ms.append((time.perf_counter() - start) * 1000)
            if response.status != 201:
                ledger.error(f"submit {response.status}")
                assignment = await claim(conn, headers, project_id, ledger)
                continue
            data = response.json()
            annotation = data["annotation"]["id"] if combined else data["id"]
            ledger.acked[annotation] = assignment
            if rng.random() < 0.02:  # a client retry: must replay, never duplicate
                again = await conn.request("POST", path, submit_headers, payload)
                replayed = again.json() if again.status == 201 else None
                same = (
                    replayed is not None
                    and (replayed["annotation"] if combined else replayed)["id"] == annotation
                )
                ledger.replays_ok += int(same)
                ledger.replays_bad += int(not same)
            if combined:
                following = data["next"]
                assignment = None if following is None else following["assignment_id"]
            else:
                assignment = await claim(conn, headers, project_id, ledger)
    finally:
        await conn.close()


async def claim(conn: RawConnection, headers: dict[str, str], project_id: int, ledger: Ledger) -> int | None:
    start = time.perf_counter()
    response = await conn.request("POST", f"/api/v1/projects/{project_id}/assignments/next", headers)
    ledger.claims_ms.append((time.perf_counter() - start) * 1000)
    if response.status == 204:
        return None
    if response.status != 200:
        ledger.error(f"claim {response.status}")
        return None
    return int(response.json()["assignment_id"])


async def run_load(
    url: str, tokens: list[str], project_id: int, duration_s: float, think_s: float, combined: bool = True
) -> tuple[Ledger, float]:
    ledger = Ledger()
    start = time.perf_counter()
    deadline = start + duration_s
    await asyncio.gather(
        *(annotator(url, t, project_id, deadline, think_s, ledger, i, combined) for i, t in enumerate(tokens))
    )
    return ledger, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def verify(url: str, admin_token: str, project_id: int, ledger: Ledger) -> dict[str, Any]:
    """Every acknowledged annotation must exist (lost), no (comparison, annotator) may repeat and
    no comparison may hold more than k submitted annotations (duplicated)."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    votes: dict[int, tuple[int, int]] = {}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        after = 0
        while True:
            page = client.get(
                f"/api/v1/projects/{project_id}/votes", params={"after_id": after, "limit": 5000}
            )
            page.raise_for_status()
            data = page.json()
            for vote in data["items"]:
                votes[vote["annotation_id"]] = (vote["annotator_id"], vote["comparison_id"])
            if data["next_after_id"] is None:
                break
            after = data["next_after_id"]
        over_k, offset = 0, 0
        while True:
            page = client.get(
                f"/api/v1/projects/{project_id}/comparisons", params={"limit": 500, "offset": offset}
            )
            page.raise_for_status()
            items = page.json()["items"]
            over_k += sum(1 for c in items if c["submitted_count"] > c["overlap_target"])
            if len(items) < 500:
                break
            offset += 500
    lost = sum(1 for annotation in ledger.acked if annotation not in votes)
    pairs = [v for v in votes.values()]
    duplicated = len(pairs) - len(set(pairs)) + over_k
    return {"lost": lost, "duplicated": duplicated, "over_k": over_k, "votes_on_server": len(votes)}
