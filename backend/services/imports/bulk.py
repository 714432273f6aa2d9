"""Writing preference pairs in bulk: COPY into a staging table, then one INSERT ... SELECT per table.

The batch writer (writer.py) looks up and inserts each batch of 500 rows with several round trips
and SQLAlchemy parameter processing per row; a 330k-pair PKU-SafeRLHF file took half an hour that
way. Here the parsed rows stream into a temporary table through psycopg's COPY (one round trip per
64 KiB), and three statements merge them, all inside the import's transaction:

1. prompts: the first row of each prompt hash, `ON CONFLICT (project_id, content_hash) DO NOTHING`;
2. responses: the first row of each (prompt, response hash), `ON CONFLICT (prompt_id, content_hash)
   DO NOTHING`;
3. comparisons: the first row of each pair of responses, in either order, that no comparison holds
   yet (`NOT EXISTS` both ways; `ON CONFLICT` covers a concurrent import of the same pair).

Deduplication is the batch writer's, row for row (tests/backend/test_import_bulk.py compares the
two): a row whose pair exists already, or appeared earlier in the file, is a duplicate. Rows are
validated and rejected before they reach the stage, so the per-row report does not change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.orm import Session

from backend.db.raw import driver
from backend.services.imports.rows import PairRow
from backend.services.imports.writer import PairPolicy, WriteStats

_CREATE = """
CREATE TEMPORARY TABLE import_pair_stage (
    seq integer NOT NULL,
    p_hash text NOT NULL, p_text text NOT NULL, p_source text NOT NULL, p_meta jsonb NOT NULL,
    a_hash text NOT NULL, a_text text NOT NULL, a_model text NOT NULL, a_meta jsonb NOT NULL,
    b_hash text NOT NULL, b_text text NOT NULL, b_model text NOT NULL, b_meta jsonb NOT NULL,
    gold jsonb
) ON COMMIT DROP
"""

_COPY = "COPY import_pair_stage FROM STDIN"

_PROMPTS = """
INSERT INTO prompt (project_id, text, content_hash, source, tags, is_red_team, round_id, meta)
SELECT %(project)s, p_text, p_hash, p_source, '{}', false, %(round)s, p_meta
FROM (SELECT DISTINCT ON (p_hash) * FROM import_pair_stage ORDER BY p_hash, seq) AS first_rows
ORDER BY seq
ON CONFLICT (project_id, content_hash) DO NOTHING
"""

_RESPONSES = """
INSERT INTO response (prompt_id, text, content_hash, model_name, round_id, meta)
SELECT prompt_id, text, hash, model, %(round)s, meta
FROM (
    SELECT DISTINCT ON (p.id, side.hash) p.id AS prompt_id, side.*
    FROM (
        SELECT seq, 0 AS pos, p_hash, a_hash AS hash, a_text AS text, a_model AS model, a_meta AS meta
        FROM import_pair_stage
        UNION ALL
        SELECT seq, 1, p_hash, b_hash, b_text, b_model, b_meta FROM import_pair_stage
    ) AS side
    JOIN prompt AS p ON p.project_id = %(project)s AND p.content_hash = side.p_hash
    ORDER BY p.id, side.hash, side.seq, side.pos
) AS first_rows
ORDER BY seq, pos
ON CONFLICT (prompt_id, content_hash) DO NOTHING
"""

_COMPARISONS = """
INSERT INTO comparison
    (project_id, prompt_id, response_a_id, response_b_id, round_id, overlap_target, priority,
     is_gold, gold_labels)
SELECT %(project)s, prompt_id, a, b, %(round)s,
       CASE WHEN gold IS NULL THEN %(overlap)s ELSE %(gold_overlap)s END, %(priority)s,
       gold IS NOT NULL, gold
FROM (
    SELECT DISTINCT ON (LEAST(ra.id, rb.id), GREATEST(ra.id, rb.id))
        s.seq, p.id AS prompt_id, ra.id AS a, rb.id AS b, s.gold
    FROM import_pair_stage AS s
    JOIN prompt AS p ON p.project_id = %(project)s AND p.content_hash = s.p_hash
    JOIN response AS ra ON ra.prompt_id = p.id AND ra.content_hash = s.a_hash
    JOIN response AS rb ON rb.prompt_id = p.id AND rb.content_hash = s.b_hash
    ORDER BY LEAST(ra.id, rb.id), GREATEST(ra.id, rb.id), s.seq
) AS first_rows
WHERE NOT EXISTS (
    SELECT 1 FROM comparison AS e
    WHERE (e.response_a_id = first_rows.a AND e.response_b_id = first_rows.b)
       OR (e.response_a_id = first_rows.b AND e.response_b_id = first_rows.a)
)
ORDER BY seq
ON CONFLICT (response_a_id, response_b_id) DO NOTHING
"""


class PairStage:
    """Rows added here are in the staging table; `merge` writes what is new into the project."""

    def __init__(self, copy: psycopg.Copy) -> None:
        self._copy = copy
        self.rows = 0

    def add(self, row: PairRow) -> None:
        self.rows += 1
        prompt, a, b = row.prompt, row.a, row.b
        self._copy.write_row(
            (
                self.rows,
                prompt.content_hash,
                prompt.text,
                prompt.source,
                json.dumps(prompt.meta),
                a.content_hash,
                a.text,
                a.model_name,
                json.dumps(a.meta),
                b.content_hash,
                b.text,
                b.model_name,
                json.dumps(b.meta),
                None if row.gold is None else json.dumps(row.gold),
            )
        )


@contextmanager
def pair_stage(session: Session) -> Iterator[PairStage]:
    """A fresh staging table in the session's transaction, open for COPY while the block runs."""
    conn = driver(session)
    with conn.cursor() as cursor:
        cursor.execute(
            "DROP TABLE IF EXISTS import_pair_stage"
        )  # left by an earlier import in this transaction
        cursor.execute(_CREATE)
        # The queued writer sends COPY data from a thread of its own, so Postgres ingests one
        # chunk while this thread reads and validates the next rows.
        with cursor.copy(_COPY, writer=QueuedLibpqWriter(cursor)) as copy:
            yield PairStage(copy)


def merge_pairs(session: Session, project_id: int, policy: PairPolicy, staged: int) -> WriteStats:
    """Insert the staged prompts, responses and comparisons that are new; count the rest."""
    params = {
        "project": project_id,
        "round": policy.round_id,
        "overlap": policy.overlap,
        "gold_overlap": policy.gold_overlap,
        "priority": policy.priority,
    }
    stats = WriteStats()
    with driver(session).cursor() as cursor:
        # Temporary tables get no statistics otherwise; the hashes are all the joins need (the
        # texts would make ANALYZE read and detoast every sampled row).
        cursor.execute("ANALYZE import_pair_stage (p_hash, a_hash, b_hash)")
        # The DISTINCT ON sorts carry the texts; in the default 4 MB they spill to disk.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(_PROMPTS, params)
        stats.prompts = cursor.rowcount
        cursor.execute(_RESPONSES, params)
        stats.responses = cursor.rowcount
        cursor.execute(_COMPARISONS, params)
        stats.comparisons = cursor.rowcount
        cursor.execute("DROP TABLE import_pair_stage")
    stats.duplicate_rows = staged - stats.comparisons
    return stats
