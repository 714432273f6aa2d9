#!/usr/bin/env python3
"""Import speed: preference pairs per second through `run_import`, the service the web form, the
REST API and the CLI call, into a throwaway database on a real Postgres.

    .venv/bin/python benchmarks/import_speed.py                  # 20k HH + 20k PKU pairs
    .venv/bin/python benchmarks/import_speed.py --pairs 10000 --old-pairs 2000

It generates the files itself (deterministic seed, nothing downloaded): Anthropic HH-RLHF rows
(multi-turn `chosen`/`rejected` transcripts, prompts shared between rows as in the real files)
and PKU-SafeRLHF v1 rows (sources, 19-category dicts, severities), with about 1% repeated rows
and 0.2% invalid ones (an empty last Assistant turn), imported with "skip invalid rows".

Each run imports both files into a new project (nothing is a duplicate of earlier runs); the rate
is the median of `--runs` runs. The old path (the batch writer, `bulk_pairs=False`) is measured the
same way on the first `--old-pairs` pairs of each file, as it is too slow for the full files.
Without DATABASE_URL it starts the embedded Postgres (scripts/devservices.py). The last line is:
    import_pairs_per_s=<x> old_path_pairs_per_s=<x> speedup=<x>
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.annotation_load import services  # noqa: E402

VOCABULARY = (
    "the a of to and in is it you that for how can I my what with be on do not this are your have "
    "would about should people some like just make get know help want any more there if they one "
    "money car house dog friend neighbor work school police doctor water fire computer password "
    "bank store food gun drug law safe legal idea way time year day really think good bad best"
)
WORDS = VOCABULARY.split()
CATEGORIES = [
    "Endangering National Security",
    "Insulting Behavior",
    "Discriminatory Behavior",
    "Endangering Public Health",
    "Copyright Issues",
    "Violence",
    "Drugs",
    "Privacy Violation",
    "Economic Crime",
    "Mental Manipulation",
    "Human Trafficking",
    "Physical Harm",
    "Sexual Content",
    "Cybercrime",
    "Disrupting Public Order",
    "Environmental Damage",
    "Psychological Harm",
    "White-Collar Crime",
    "Animal Abuse",
]


def sentence(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(low, high))
    return " ".join(words).capitalize() + rng.choice(".?!")


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng, 6, 18) for _ in range(sentences))


def hh_rows(rng: random.Random, n: int) -> list[dict[str, str]]:
    """HH-RLHF rows: 1-4 earlier turns, then two different last Assistant turns."""
    openers = [sentence(rng, 5, 15) for _ in range(max(1, n // 3))]  # shared first questions
    rows: list[dict[str, str]] = []
    for i in range(n):
        if rows and rng.random() < 0.01:
            rows.append(dict(rows[rng.randrange(len(rows))]))  # a repeated row
            continue
        dialogue = f"\n\nHuman: {rng.choice(openers)}"
        for _ in range(rng.randint(0, 3)):
            dialogue += f"\n\nAssistant: {paragraph(rng, rng.randint(1, 3))}"
            dialogue += f"\n\nHuman: {sentence(rng, 4, 16)}"
        chosen = "" if rng.random() < 0.002 else f" {paragraph(rng, rng.randint(1, 6))} ({i})"
        rejected = f" {paragraph(rng, rng.randint(1, 6))}"
        rows.append(
            {
                "chosen": f"{dialogue}\n\nAssistant:{chosen}",
                "rejected": f"{dialogue}\n\nAssistant:{rejected}",
            }
        )
    return rows


def pku_side(rng: random.Random) -> tuple[bool, dict[str, bool], int]:
    if rng.random() < 0.5:
        return True, dict.fromkeys(CATEGORIES, False), 0
    flagged = set(rng.sample(CATEGORIES, rng.randint(1, 3)))
    return False, {c: c in flagged for c in CATEGORIES}, rng.randint(1, 3)


def pku_rows(rng: random.Random, n: int) -> list[dict[str, object]]:
    prompts = [paragraph(rng, rng.randint(1, 2)) for _ in range(max(1, n // 2))]
    rows: list[dict[str, object]] = []
    for i in range(n):
        if rows and rng.random() < 0.01:
            rows.append(dict(rows[rng.randrange(len(rows))]))
            continue
        row: dict[str, object] = {
            "prompt": rng.choice(prompts),
            "prompt_source": "generated",
            "better_response_id": rng.randint(0, 1),
            "safer_response_id": rng.randint(0, 1),
        }
        for side in (0, 1):
            safe, categories, severity = pku_side(rng)
            row |= {
                f"response_{side}": f"{paragraph(rng, rng.randint(1, 8))} ({i}.{side})",
                f"response_{side}_source": rng.choice(("Alpaca-7B", "Alpaca2-7B", "Alpaca3-8B")),
                f"is_response_{side}_safe": safe,
                f"response_{side}_harm_category": categories,
                f"response_{side}_severity_level": severity,
            }
        rows.append(row)
    return rows


def jsonl(rows: list[dict[str, object]] | list[dict[str, str]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def migrate(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    alembic = str(Path(sys.executable).parent / "alembic")
    subprocess.run([alembic, "upgrade", "head"], cwd=REPO, env=env, check=True, capture_output=True)


def timed_import(database_url: str, files: dict[str, bytes], *, bulk: bool) -> tuple[float, int, int]:
    """Seconds to import both files into a fresh project, pairs read, comparisons created."""
    from backend.db.session import get_sessionmaker
    from backend.domain.enums import ImportKind, UserRole
    from backend.services.imports import ImportOptions, run_import
    from backend.services.projects import ProjectChanges, create_project
    from backend.services.users import create_user

    with get_sessionmaker()() as session:
        tag = uuid.uuid4().hex[:8]
        admin = create_user(
            session=session, email=f"bench-{tag}@example.test", password="x" * 12, role=UserRole.admin
        )
        project = create_project(session=session, actor=admin, changes=ProjectChanges(name=f"import-{tag}"))
        kinds = {
            "hh.jsonl": ImportOptions(kind=ImportKind.hh_rlhf, hh_axis="harmlessness", on_error="skip_rows"),
            "pku.jsonl": ImportOptions(kind=ImportKind.pku_saferlhf, labels="ignore", on_error="skip_rows"),
        }
        start = time.perf_counter()
        batches = [
            run_import(
                session=session,
                actor=admin,
                project=project,
                options=kinds[name],
                upload=io.BytesIO(data),
                filename=name,
                max_bytes=1 << 30,
                bulk_pairs=bulk,
            )
            for name, data in files.items()
        ]
        elapsed = time.perf_counter() - start
    rows = sum(b.total_rows for b in batches)
    created = sum(b.report["created"]["comparisons"] for b in batches)
    return elapsed, rows, created


def measure(database_url: str, files: dict[str, bytes], runs: int, *, bulk: bool) -> float:
    rates = []
    for run in range(runs):
        elapsed, rows, created = timed_import(database_url, files, bulk=bulk)
        rates.append(rows / elapsed)
        path = "bulk" if bulk else "old"
        print(f"{path} run {run + 1}: {rows} rows ({created} new pairs) in {elapsed:.2f} s", end=" ")
        print(f"= {rates[-1]:.0f} pairs/s")
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=40_000, help="pairs in all, half HH-RLHF, half PKU")
    p.add_argument("--old-pairs", type=int, default=4_000, help="pairs for the old path's runs")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    hh, pku = hh_rows(rng, args.pairs // 2), pku_rows(rng, args.pairs - args.pairs // 2)
    files = {"hh.jsonl": jsonl(hh), "pku.jsonl": jsonl(pku)}
    half = args.old_pairs // 2
    old_files = {"hh.jsonl": jsonl(hh[:half]), "pku.jsonl": jsonl(pku[:half])}
    size = sum(len(f) for f in files.values()) / 1e6
    print(f"files: {len(hh)} HH-RLHF + {len(pku)} PKU-SafeRLHF rows, {size:.1f} MB")
    with services() as database_url:
        migrate(database_url)
        os.environ["DATABASE_URL"] = database_url
        new = measure(database_url, files, args.runs, bulk=True)
        old = measure(database_url, old_files, args.runs, bulk=False)
    print(f"import_pairs_per_s={new:.0f} old_path_pairs_per_s={old:.0f} speedup={new / old:.1f}")


if __name__ == "__main__":
    main()
