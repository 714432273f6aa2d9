"""Reading a running stage's events.jsonl into Postgres, fenced by the job's lease.

Progress goes into the job row, metrics into `metric` rows (INSERT ... ON CONFLICT (job_id, name,
step) DO UPDATE), and the cursor `ingest_seq` (the seq of the next event to store) advances in the
same transaction, fenced by the lease token: a worker that lost its lease stores nothing, and a
re-read of the same events stores nothing twice. A resumed run continues the file's seq numbering
but emits the steps after its last checkpoint again; the upsert keeps the latest value per step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from backend.db.models import Metric, TrainingJob
from backend.domain.enums import JobState
from backend.services.jobs import Lease

EVENTS_FILE = "events.jsonl"
SCHEMA_VERSION = 1
LOG_TAIL_BYTES = 4000
INSERT_CHUNK = 5000


class EventTail:
    """Complete lines appended to an events file since the last read (a torn last line waits)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read_new(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        events = []
        for line in data[:end].splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if (
                isinstance(event, dict)
                and event.get("v") == SCHEMA_VERSION
                and isinstance(event.get("seq"), int)
            ):
                events.append(event)
        return events


@dataclass
class Digest:
    """What a batch of events says, reduced to the writes it needs."""

    next_seq: int
    metrics: dict[tuple[str, int], float] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    failed_message: str | None = None
    completed: bool = False


def digest(events: list[dict[str, Any]], *, from_seq: int) -> Digest:
    out = Digest(next_seq=from_seq)
    for event in events:
        if event["seq"] < from_seq:
            continue  # stored before (a re-read after a restart)
        out.next_seq = max(out.next_seq, event["seq"] + 1)
        kind = event.get("type")
        if kind == "metric":
            for name, value in (event.get("metrics") or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    out.metrics[(str(name)[:100], int(event["step"]))] = float(value)
        elif kind == "progress":
            out.progress = {
                "current_step": int(event.get("step") or 0),
                "total_steps": int(event.get("total_steps") or 0) or None,
                "progress": float(event.get("fraction") or 0.0),
                "eta_s": event.get("eta_s"),
            }
        elif kind == "checkpoint" and not event.get("final"):
            out.checkpoint = str(event.get("path"))
        elif kind == "status" and event.get("status") == "failed":
            out.failed_message = str(event.get("message") or "")
        elif kind == "status" and event.get("status") == "completed":
            out.completed = True
    return out


def log_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - limit))
        return handle.read().decode("utf-8", errors="replace")


def store(session: Session, *, lease: Lease, batch: Digest, output_key: str | None, tail: str | None) -> bool:
    """Write one digest, fenced by the lease. False: the lease is gone and nothing was written."""
    values: dict[str, Any] = {"ingest_seq": batch.next_seq, **batch.progress}
    if batch.checkpoint is not None and output_key:
        values["checkpoint_key"] = f"{output_key}/output/{batch.checkpoint}"
    if tail is not None:
        values["log_tail"] = tail
    fenced = session.execute(
        update(TrainingJob)
        .where(
            TrainingJob.id == lease.job_id,
            TrainingJob.lease_token == lease.token,
            TrainingJob.state == JobState.running,
        )
        .values(**values)
        .returning(TrainingJob.id)
    ).first()
    if fenced is None:
        session.rollback()
        return False
    if batch.metrics:
        rows = [
            {"job_id": lease.job_id, "name": name, "step": step, "value": value}
            for (name, step), value in batch.metrics.items()
        ]
        for start in range(0, len(rows), INSERT_CHUNK):  # Postgres caps a statement at 65535 parameters
            stmt = insert(Metric).values(rows[start : start + INSERT_CHUNK])
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[Metric.job_id, Metric.name, Metric.step],
                    set_={"value": stmt.excluded.value},
                )
            )
    session.commit()
    return True
