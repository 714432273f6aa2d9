"""A round's prompts in, the policy's answers out: the prompt files its jobs read, and the
generations turned into responses and comparisons in the round's queue."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from backend.db.models import Comparison, ModelArtifact, Project, Prompt, Response, Round, TrainingJob
from backend.domain.errors import InvalidInput
from backend.services.imports.rows import content_hash
from backend.services.jobs_submit import PROMPTS_FILE
from backend.services.rounds.gold import open_gold_items
from backend.services.rounds.settings import HELDOUT_SUFFIX, RoundSettings
from backend.services.storage import publish_directory, resolve_artifact

GENERATIONS = "generations.jsonl"
MAX_HELD_OUT = 500  # the arena's prompts: enough for stable win rates, cheap on a CPU


@dataclass(frozen=True)
class PromptFiles:
    train_key: str
    heldout_key: str
    train_count: int
    heldout_count: int


def _held_out(prompt: Prompt, fraction: float) -> bool:
    """A fixed share of each source, by content hash: the same prompts stay held out every round."""
    return int(prompt.content_hash[:8], 16) / 0x1_0000_0000 < fraction


def _row(prompt: Prompt) -> dict[str, Any]:
    row: dict[str, Any] = {"prompt_id": prompt.id, "prompt": prompt.text}
    if prompt.harm_category:
        row["harm_category"] = prompt.harm_category
    return row


def write_prompt_file(artifacts_dir: Path, rows: list[dict[str, Any]]) -> str:
    """Content-addressed (prompts/<sha256>), so the same prompts are the same job input."""
    body = b"".join(json.dumps(r, ensure_ascii=False, sort_keys=True).encode() + b"\n" for r in rows)
    sha = hashlib.sha256(body).hexdigest()
    key = f"prompts/{sha}"
    target = Path(artifacts_dir) / key
    if not (target / PROMPTS_FILE).is_file():
        (Path(artifacts_dir) / "prompts").mkdir(parents=True, exist_ok=True)
        tmp = Path(artifacts_dir) / "prompts" / f"tmp_{sha[:16]}_{random.getrandbits(32):08x}"
        tmp.mkdir()
        (tmp / PROMPTS_FILE).write_bytes(body)
        publish_directory(tmp, target)
    return key


def choose_prompts(
    session: Session, *, artifacts_dir: Path, round_: Round, settings: RoundSettings
) -> PromptFiles:
    """Sample the round's prompts (plus every accepted red-team prompt no round used yet, which
    this round now claims) and pick its held-out prompts for the arena."""
    pool = list(
        session.scalars(
            select(Prompt)
            .where(Prompt.project_id == round_.project_id, Prompt.source.in_(settings.prompt_sources))
            .order_by(Prompt.id)
        )
    )
    explicit = list(
        session.scalars(
            select(Prompt)
            .where(
                Prompt.project_id == round_.project_id,
                Prompt.source.in_([s + HELDOUT_SUFFIX for s in settings.prompt_sources]),
            )
            .order_by(Prompt.id)
        )
    )
    if explicit:
        train, heldout = pool, explicit
    else:
        heldout = [p for p in pool if _held_out(p, settings.held_out_fraction)]
        train = [p for p in pool if not _held_out(p, settings.held_out_fraction)]
    rng = random.Random(f"round-{round_.id}-{settings.seed}")
    sample = rng.sample(train, min(settings.num_prompts, len(train)))
    red_team = list(
        session.scalars(
            select(Prompt).where(
                Prompt.project_id == round_.project_id,
                Prompt.is_red_team.is_(True),
                Prompt.review_state == "accepted",
                (Prompt.round_id.is_(None)) | (Prompt.round_id == round_.id),
            )
        )
    )
    chosen = {p.id: p for p in [*sample, *red_team]}
    if not chosen:
        raise InvalidInput("the chosen prompt sets have no prompts left for training", code="no_prompts")
    if red_team:
        session.execute(
            update(Prompt).where(Prompt.id.in_([p.id for p in red_team])).values(round_id=round_.id)
        )
    heldout = rng.sample(heldout, min(MAX_HELD_OUT, len(heldout))) if heldout else sample[:MAX_HELD_OUT]
    heldout.sort(key=lambda p: p.id)  # a canonical file: the same prompts, the same key
    return PromptFiles(
        train_key=write_prompt_file(artifacts_dir, [_row(chosen[i]) for i in sorted(chosen)]),
        heldout_key=write_prompt_file(artifacts_dir, [_row(p) for p in heldout]),
        train_count=len(chosen),
        heldout_count=len(heldout),
    )


def _generations(artifacts_dir: Path, job: TrainingJob) -> list[dict[str, Any]]:
    key = f"{job.output_key or f'jobs/{job.id}'}/output"
    path = resolve_artifact(Path(artifacts_dir), key, GENERATIONS)
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def _response_ids(
    session: Session, round_: Round, policy: ModelArtifact, rows: list[dict[str, Any]]
) -> dict[int, set[int]]:
    """Insert the answers as responses (an identical answer already stored is reused); prompt id
    -> the ids of its answers."""
    values: dict[tuple[int, str], dict[str, Any]] = {}
    for row in rows:
        text = str(row.get("response", ""))
        pid = int(row["prompt_id"])
        meta = {
            k: row[k] for k in ("reward", "cost", "true_helpfulness", "true_unsafe", "length") if k in row
        }
        values.setdefault(
            (pid, content_hash(text)),
            {
                "prompt_id": pid,
                "text": text,
                "content_hash": content_hash(text),
                "model_name": policy.name,
                "model_artifact_id": policy.id,
                "round_id": round_.id,
                "meta": meta,
            },
        )
    if values:
        session.execute(
            insert(Response).on_conflict_do_nothing(index_elements=["prompt_id", "content_hash"]),
            list(values.values()),
        )
    by_prompt: dict[int, set[int]] = {}
    keys = list(values)
    for start in range(0, len(keys), 1000):
        found = session.execute(
            select(Response.prompt_id, Response.id).where(
                tuple_(Response.prompt_id, Response.content_hash).in_(keys[start : start + 1000])
            )
        ).all()
        for pid, rid in found:
            by_prompt.setdefault(pid, set()).add(rid)
    return by_prompt


def ingest_generations(
    session: Session, *, artifacts_dir: Path, round_: Round, jobs: list[TrainingJob], settings: RoundSettings
) -> int:
    """Responses and every pair per prompt as comparisons of the round; idempotent (a replay
    inserts nothing twice). Returns the number of comparisons the round has."""
    policy = session.get(ModelArtifact, round_.base_policy_id)
    if policy is None:
        raise InvalidInput("the round's policy is no longer in the registry", code="policy_missing")
    rows = [row for job in jobs for row in _generations(artifacts_dir, job)]
    by_prompt = _response_ids(session, round_, policy, rows)
    pairs = [
        {
            "project_id": round_.project_id,
            "prompt_id": pid,
            "response_a_id": a,
            "response_b_id": b,
            "round_id": round_.id,
            "overlap_target": settings.overlap_k,
        }
        for pid, ids in sorted(by_prompt.items())
        for a, b in itertools.combinations(sorted(ids), 2)
    ]
    for start in range(0, len(pairs), 1000):
        session.execute(
            insert(Comparison).on_conflict_do_nothing(index_elements=["response_a_id", "response_b_id"]),
            pairs[start : start + 1000],
        )
    project = session.get(Project, round_.project_id)
    if project is not None:
        project.gold_rate = settings.gold_rate  # served to annotators while this round collects
        if settings.gold_rate > 0:
            open_gold_items(session, project.id)  # the queue serves only gold items with room
    return len(pairs)
