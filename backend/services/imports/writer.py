"""Writing parsed rows in batches, deduplicated by content hash.

A prompt is the same prompt when its normalised text hashes the same within the project; a
response, when its text hashes the same under the same prompt; a comparison, when it pairs the
same two responses in either order. Rows that add nothing new are counted as duplicates. Each
batch looks up what exists with one query per table, so earlier batches of the same file (same
transaction) are seen too.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, or_, select, tuple_
from sqlalchemy.orm import Session

from backend.db.models import Comparison, Prompt, Response
from backend.services.imports.rows import PairRow, PromptResponseRow, PromptRow, ResponseRow


@dataclass
class WriteStats:
    prompts: int = 0
    responses: int = 0
    comparisons: int = 0
    duplicate_rows: int = 0
    touched_prompts: set[int] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {"prompts": self.prompts, "responses": self.responses, "comparisons": self.comparisons}


@dataclass(frozen=True)
class PairPolicy:
    overlap: int
    gold_overlap: int
    priority: float
    round_id: int | None


class BatchWriter:
    def __init__(self, session: Session, project_id: int, policy: PairPolicy) -> None:
        self.session = session
        self.project_id = project_id
        self.policy = policy
        self.stats = WriteStats()

    def _ensure_prompts(self, prompts: Sequence[PromptRow]) -> tuple[dict[str, int], set[str]]:
        wanted = {p.content_hash: p for p in reversed(prompts)}  # the first occurrence wins
        found = dict(
            self.session.execute(
                select(Prompt.content_hash, Prompt.id).where(
                    Prompt.project_id == self.project_id, Prompt.content_hash.in_(list(wanted))
                )
            ).all()
        )
        missing = [wanted[h] for h in wanted if h not in found]
        if missing:
            rows = self.session.execute(
                insert(Prompt).returning(Prompt.content_hash, Prompt.id),
                [self._prompt_values(p) for p in missing],
            ).all()
            created = dict(rows)
            found.update(created)
            self.stats.prompts += len(created)
        return found, {p.content_hash for p in missing}

    def _prompt_values(self, prompt: PromptRow) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "text": prompt.text,
            "content_hash": prompt.content_hash,
            "source": prompt.source,
            "tags": list(prompt.tags),
            "is_red_team": prompt.is_red_team,
            "harm_category": prompt.harm_category,
            "round_id": self.policy.round_id,
            "meta": prompt.meta,
        }

    def _ensure_responses(
        self, items: Sequence[tuple[int, ResponseRow]]
    ) -> tuple[dict[tuple[int, str], int], set[tuple[int, str]]]:
        wanted = {(pid, r.content_hash): (pid, r) for pid, r in reversed(items)}
        found = {
            (pid, h): rid
            for pid, h, rid in self.session.execute(
                select(Response.prompt_id, Response.content_hash, Response.id).where(
                    tuple_(Response.prompt_id, Response.content_hash).in_(list(wanted))
                )
            ).all()
        }
        missing = [key for key in wanted if key not in found]
        if missing:
            values = [
                {
                    "prompt_id": pid,
                    "text": row.text,
                    "content_hash": row.content_hash,
                    "model_name": row.model_name,
                    "round_id": self.policy.round_id,
                    "meta": row.meta,
                }
                for pid, row in (wanted[key] for key in missing)
            ]
            created = self.session.execute(
                insert(Response).returning(Response.prompt_id, Response.content_hash, Response.id), values
            ).all()
            for pid, h, rid in created:
                found[(pid, h)] = rid
                self.stats.responses += 1
        return found, set(missing)

    def write_prompts(self, rows: Sequence[PromptRow]) -> None:
        _, created = self._ensure_prompts(rows)
        seen: set[str] = set()
        for row in rows:
            if row.content_hash not in created or row.content_hash in seen:
                self.stats.duplicate_rows += 1
            seen.add(row.content_hash)

    def write_responses(self, rows: Sequence[PromptResponseRow]) -> None:
        prompt_ids, _ = self._ensure_prompts([r.prompt for r in rows])
        items = [(prompt_ids[r.prompt.content_hash], r.response) for r in rows]
        _, created = self._ensure_responses(items)
        seen: set[tuple[int, str]] = set()
        for pid, response in items:
            key = (pid, response.content_hash)
            if key not in created or key in seen:
                self.stats.duplicate_rows += 1
            seen.add(key)
            self.stats.touched_prompts.add(pid)

    def write_pairs(self, rows: Sequence[PairRow]) -> None:
        prompt_ids, _ = self._ensure_prompts([r.prompt for r in rows])
        items = []
        for row in rows:
            pid = prompt_ids[row.prompt.content_hash]
            items += [(pid, row.a), (pid, row.b)]
        response_ids, _ = self._ensure_responses(items)
        pairs = []
        for row in rows:
            pid = prompt_ids[row.prompt.content_hash]
            a = response_ids[(pid, row.a.content_hash)]
            b = response_ids[(pid, row.b.content_hash)]
            pairs.append((pid, a, b, row.gold))
        self._insert_comparisons(pairs)

    def _insert_comparisons(self, pairs: Sequence[tuple[int, int, int, dict[str, Any] | None]]) -> None:
        if not pairs:
            return
        keys = [(a, b) for _, a, b, _ in pairs]
        existing = {
            frozenset(pair)
            for pair in self.session.execute(
                select(Comparison.response_a_id, Comparison.response_b_id).where(
                    or_(
                        tuple_(Comparison.response_a_id, Comparison.response_b_id).in_(keys),
                        tuple_(Comparison.response_b_id, Comparison.response_a_id).in_(keys),
                    )
                )
            ).all()
        }
        values = []
        for pid, a, b, gold in pairs:
            if frozenset((a, b)) in existing:
                self.stats.duplicate_rows += 1
                continue
            existing.add(frozenset((a, b)))
            values.append(self._comparison_values(pid, a, b, gold))
        if values:
            self.session.execute(insert(Comparison), values)
            self.stats.comparisons += len(values)

    def _comparison_values(self, pid: int, a: int, b: int, gold: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "prompt_id": pid,
            "response_a_id": a,
            "response_b_id": b,
            "round_id": self.policy.round_id,
            "overlap_target": self.policy.gold_overlap if gold is not None else self.policy.overlap,
            "priority": self.policy.priority,
            "is_gold": gold is not None,
            "gold_labels": gold,
        }

    def pair_touched_prompts(self) -> None:
        """Every pair of responses of each prompt the file touched becomes a comparison (the
        paper annotated all k(k-1)/2 pairs of a prompt's 3-6 responses, spec §9)."""
        touched = sorted(self.stats.touched_prompts)
        for start in range(0, len(touched), 500):
            chunk = touched[start : start + 500]
            by_prompt: dict[int, list[int]] = {}
            for pid, rid in self.session.execute(
                select(Response.prompt_id, Response.id)
                .where(Response.prompt_id.in_(chunk))
                .order_by(Response.prompt_id, Response.id)
            ).all():
                by_prompt.setdefault(pid, []).append(rid)
            pairs = [
                (pid, a, b, None) for pid, ids in by_prompt.items() for a, b in itertools.combinations(ids, 2)
            ]
            before = self.stats.duplicate_rows
            self._insert_comparisons(pairs)
            self.stats.duplicate_rows = before  # pairs that exist are not rows of the file
