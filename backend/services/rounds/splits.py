"""The held-out part of a round's snapshot: the reward and cost models train on one part and are
scored on the other, so the report's reward accuracy and cost sign accuracy are held-out figures.

The split is by prompt (every pair of a prompt lands on the same side, so no held-out prompt was
seen in training) and by a hash of its text, so a prompt stays on its side in every round. Each
part is recorded as a snapshot of its own, content-addressed like every export, with the snapshot
it came from in its recipe.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import DatasetSnapshot
from backend.services.storage import publish_directory, resolve_artifact

DATA = "data.jsonl"


@dataclass(frozen=True)
class Split:
    train_id: int
    heldout_id: int | None  # None: too few prompts to hold any out


def _held_out(prompt: str, fraction: float) -> bool:
    return int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 0x1_0000_0000 < fraction


def _record(
    session: Session,
    artifacts_dir: Path,
    parent: DatasetSnapshot,
    part: str,
    lines: list[bytes],
    fraction: float,
) -> int:
    body = b"".join(lines)
    sha = hashlib.sha256(body).hexdigest()
    found = session.scalar(select(DatasetSnapshot.id).where(DatasetSnapshot.content_sha256 == sha))
    if found is not None:
        return int(found)
    key = f"snapshots/{sha}"
    if not (artifacts_dir / key / DATA).is_file():
        tmp = artifacts_dir / "snapshots" / f"tmp_split_{sha[:16]}_{random.getrandbits(32):08x}"
        tmp.mkdir(parents=True)
        (tmp / DATA).write_bytes(body)
        publish_directory(tmp, artifacts_dir / key)
    row = DatasetSnapshot(
        project_id=parent.project_id,
        round_id=parent.round_id,
        content_sha256=sha,
        storage_key=key,
        row_count=len(lines),
        vote_count=0,
        size_bytes=len(body),
        recipe={
            "split_of": parent.id,
            "part": part,
            "held_out_fraction": fraction,
            "by": "sha256 of the prompt",
        },
        stats={"rows": len(lines)},
        created_by_id=parent.created_by_id,
    )
    session.add(row)
    session.flush()  # a concurrent identical split fails this step; the round's retry reuses it
    return int(row.id)


def split_snapshot(
    session: Session, *, artifacts_dir: Path, snapshot: DatasetSnapshot, fraction: float
) -> Split:
    """Train and held-out parts of the snapshot's data rows (in the caller's transaction)."""
    if fraction <= 0:
        return Split(snapshot.id, None)
    path = resolve_artifact(Path(artifacts_dir), snapshot.storage_key, DATA)
    train: list[bytes] = []
    heldout: list[bytes] = []
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                prompt = str(json.loads(line).get("prompt", ""))
                (heldout if _held_out(prompt, fraction) else train).append(line)
    if not train or not heldout:
        return Split(snapshot.id, None)
    root = Path(artifacts_dir)
    return Split(
        _record(session, root, snapshot, "train", train, fraction),
        _record(session, root, snapshot, "heldout", heldout, fraction),
    )
