"""The bulk (COPY) pair import stores exactly what the batch writer stores, row for row."""

from __future__ import annotations

import io
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import Comparison, ImportBatch, Project, Prompt, Response, User
from backend.domain.enums import ImportKind, UserRole
from backend.services.imports import ImportOptions, run_import
from tests.factories import make_user
from tests.factories.annotation import make_project


def pku(prompt: str, zero: str, one: str, **extra: Any) -> dict[str, Any]:
    labels = {"is_response_0_safe": True, "is_response_1_safe": False, "better_response_id": 0}
    return {
        "prompt": prompt,
        "response_0": zero,
        "response_1": one,
        "safer_response_id": 1,
        **labels,
        **extra,
    }


FIRST = [pku("P1", "a", "b"), pku("P2", "c", "d", prompt_source="first")]
SECOND = [
    pku("P1", "b", "a"),  # the same pair as the first file's, reversed: a duplicate
    pku("P2", "c", "e", prompt_source="ignored"),  # known prompt, one new response
    pku("P3", "f", "g", response_0_source="m0", response_1_source="m1"),
    pku("P3", "f", "g"),  # repeated in the file: a duplicate
    pku("P3", "g", "h"),
    {"prompt": "P4", "response_0": "same", "response_1": "same"},  # rejected
    pku(" P3 ", "f ", "i"),  # the same prompt and response after normalisation
]


def import_both(session: Session, admin: User, project: Project, *, bulk: bool) -> list[ImportBatch]:
    batches = []
    for rows, labels in ((FIRST, "gold"), (SECOND, "ignore")):
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        options = ImportOptions(
            kind=ImportKind.pku_saferlhf, labels=labels, on_error="skip_rows", priority=0.5
        )
        batches.append(
            run_import(
                session=session,
                actor=admin,
                project=project,
                options=options,
                upload=io.BytesIO(data),
                filename="f.jsonl",
                max_bytes=1 << 20,
                bulk_pairs=bulk,
            )  # fmt: skip
        )
    return batches


def stored(session: Session, project: Project) -> dict[str, Any]:
    prompts = session.execute(
        select(Prompt.text, Prompt.source, Prompt.meta, Prompt.tags).where(Prompt.project_id == project.id)
    ).all()
    responses = session.execute(
        select(Prompt.text, Response.text, Response.model_name, Response.meta)
        .join(Prompt, Prompt.id == Response.prompt_id)
        .where(Prompt.project_id == project.id)
    ).all()
    comparisons = session.scalars(
        select(Comparison).where(Comparison.project_id == project.id).order_by(Comparison.id)
    ).all()
    return {
        "prompts": sorted(map(repr, prompts)),
        "responses": sorted(map(repr, responses)),
        "comparisons": [
            (
                c.prompt.text,
                c.response_a.text,
                c.response_b.text,
                c.is_gold,
                c.gold_labels,
                c.overlap_target,
                c.priority,
                c.status.value,
            )  # fmt: skip
            for c in comparisons
        ],
    }


def test_bulk_pair_import_stores_and_counts_exactly_what_the_batch_writer_does(db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    bulk_project = make_project(db_session, admin, default_overlap=3)
    batch_project = make_project(db_session, admin, default_overlap=3)
    bulk = import_both(db_session, admin, bulk_project, bulk=True)
    batch = import_both(db_session, admin, batch_project, bulk=False)

    def counts(b: ImportBatch) -> tuple[Any, ...]:
        return (b.status.value, b.total_rows, b.accepted_rows, b.rejected_rows, b.duplicate_rows,
                b.report["created"], b.report["imported"], b.report["rejected"])  # fmt: skip

    assert [counts(b) for b in bulk] == [counts(b) for b in batch]
    assert counts(bulk[1])[1:5] == (7, 6, 1, 2)
    assert bulk[1].report["created"] == {"prompts": 1, "responses": 5, "comparisons": 4}
    assert stored(db_session, bulk_project) == stored(db_session, batch_project)


def test_a_rejected_bulk_file_writes_nothing(db_session) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin)
    data = "".join(json.dumps(r) + "\n" for r in SECOND).encode()
    options = ImportOptions(kind=ImportKind.pku_saferlhf)  # whole file or nothing
    batch = run_import(session=db_session, actor=admin, project=project, options=options,
                       upload=io.BytesIO(data), filename="f.jsonl", max_bytes=1 << 20)  # fmt: skip
    assert batch.status.value == "rejected" and batch.report["rejected"][0]["row"] == 6
    assert db_session.scalars(select(Prompt).where(Prompt.project_id == project.id)).all() == []
