"""Committed test data for tests that talk to a real server process (it cannot see a rolled-back
transaction). Everything goes through the services; names are unique per call."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from backend.domain.enums import ImportKind, TokenScope, UserRole
from backend.edge.deps import ROLE_SCOPES
from backend.services.imports import ImportOptions, run_import
from backend.services.projects import ProjectChanges, add_member, create_project
from backend.services.tokens import create_token
from backend.services.users import create_user
from tests.conftest import REPO_ROOT
from tests.factories import DEFAULT_PASSWORD

EXAMPLES = REPO_ROOT / "docs" / "examples"
GUIDELINES = """\
## How to annotate

1. Read the prompt, then **both** responses in full.
2. Mark each response **safe** or **unsafe**. A response is unsafe if it is harmful in *any*
   harm category; tick every category that applies and choose how severe it is.
3. Choose which response is **more helpful**, ignoring safety.
4. Separately, choose which response is **more harmless**. Use *equal* only when you truly cannot
   tell them apart.

Your answers are never shown to other annotators.
"""


@dataclass
class World:
    project_id: int
    admin_email: str
    annotator_emails: list[str]
    tokens: dict[str, str] = field(default_factory=dict)
    password: str = DEFAULT_PASSWORD


def _session(database_url: str) -> tuple[Session, object]:
    engine = create_engine(database_url)
    return Session(engine, expire_on_commit=False), engine


def seed_world(
    database_url: str,
    *,
    annotators: int = 1,
    overlap: int = 3,
    gold_rate: float = 0.0,
    data_file: Path | None = EXAMPLES / "pku_saferlhf_sample.jsonl",
    rows: list[dict[str, object]] | None = None,
    tokens: bool = False,
) -> World:
    session, engine = _session(database_url)
    tag = uuid.uuid4().hex[:8]
    try:
        admin = create_user(
            session=session,
            email=f"admin-{tag}@example.test",
            password=DEFAULT_PASSWORD,
            role=UserRole.admin,
            display_name="Ada Admin",
        )
        people = [
            create_user(
                session=session,
                email=f"annotator{i}-{tag}@example.test",
                password=DEFAULT_PASSWORD,
                role=UserRole.annotator,
                display_name=f"Annotator {i}",
            )
            for i in range(annotators)
        ]
        project = create_project(
            session=session,
            actor=admin,
            changes=ProjectChanges(
                name=f"Safety pairs {tag}",
                guidelines_md=GUIDELINES,
                default_overlap=overlap,
                gold_rate=gold_rate,
            ),
        )
        for person in people:
            add_member(session=session, actor=admin, project=project, user_id=person.id)
        payload = (
            data_file.read_bytes()
            if data_file is not None
            else "".join(json.dumps(r) + "\n" for r in rows or []).encode()
        )
        run_import(
            session=session,
            actor=admin,
            project=project,
            options=ImportOptions(kind=ImportKind.pku_saferlhf),
            upload=io.BytesIO(payload),
            filename=data_file.name if data_file is not None else "pairs.jsonl",
            max_bytes=10**8,
        )
        world = World(project.id, admin.email, [p.email for p in people])
        if tokens:
            for person in [admin, *people]:
                scopes = sorted(ROLE_SCOPES[person.role])
                new = create_token(
                    session=session,
                    actor=admin,
                    owner=person,
                    name="test",
                    scopes=list(scopes),
                    allowed=ROLE_SCOPES[person.role],
                )
                world.tokens[person.email] = new.secret
        return world
    finally:
        session.close()
        engine.dispose()  # type: ignore[attr-defined]


def all_scopes() -> list[TokenScope]:
    return list(TokenScope)


def simulate_votes(
    database_url: str, world: World, *, annotators: int = 4, seed: int = 0, gold: int = 2
) -> None:
    """Other annotators answer every pair they are given, agreeing with the file's safety labels
    most of the time; afterwards `gold` pairs become gold checks with those labels. Gives the
    quality and review pages something real to show."""
    import random

    from sqlalchemy import select

    from backend.db.models import Comparison, Project, User
    from backend.domain.enums import Choice, ShownOrder
    from backend.domain.labels import CanonicalAnswer, ResponseLabel, ShownAnswer, choice_to_position
    from backend.services.assignments import claim_next
    from backend.services.comparisons import set_gold
    from backend.services.submissions import submit_annotation

    rng = random.Random(seed)
    session, engine = _session(database_url)
    try:
        project = session.get(Project, world.project_id)
        admin = session.scalar(select(User).where(User.email == world.admin_email))
        assert project is not None and admin is not None
        for i in range(annotators):
            noise = 0.1 + 0.1 * i
            person = create_user(
                session=session,
                email=f"sim{i}-{uuid.uuid4().hex[:6]}@example.test",
                password=DEFAULT_PASSWORD,
                role=UserRole.annotator,
                display_name=f"Simulated {i + 1}",
            )
            add_member(session=session, actor=admin, project=project, user_id=person.id)
            n = 0
            while (
                task := claim_next(session=session, user=person, project_id=project.id, rng=rng)
            ) is not None:
                comparison = session.get(Comparison, task.comparison_id)
                truth = []
                for response in (comparison.response_a, comparison.response_b):
                    meta = response.meta.get("pku_saferlhf", {})
                    safe = bool(meta.get("is_response_0_safe", meta.get("is_response_1_safe", True)))
                    if rng.random() < noise:
                        safe = not safe
                    truth.append(
                        ResponseLabel(True) if safe else ResponseLabel(False, ("privacy_violation",), 2)
                    )
                harmless = Choice.a if truth[0].is_safe or not truth[1].is_safe else Choice.b
                helpful = Choice.a if rng.random() > noise else rng.choice([Choice.b, Choice.equal])
                if rng.random() < noise:
                    harmless = rng.choice([Choice.a, Choice.b, Choice.equal])
                canonical = CanonicalAnswer(truth[0], truth[1], helpful, harmless)
                order = task.shown_order
                left, right = (
                    (canonical.a, canonical.b) if order is ShownOrder.ab else (canonical.b, canonical.a)
                )
                answer = ShownAnswer(
                    left=left,
                    right=right,
                    helpfulness=choice_to_position(helpful, order),
                    harmlessness=choice_to_position(harmless, order),
                    confidence=rng.randint(3, 5),
                    time_spent_ms=rng.randint(8000, 40000),
                )
                n += 1
                submit_annotation(
                    session=session,
                    user=person,
                    assignment_id=task.assignment_id,
                    answer=answer,
                    idempotency_key=f"sim-{n}",
                )
        comparisons = list(
            session.scalars(
                select(Comparison).where(Comparison.project_id == project.id).order_by(Comparison.id)
            )
        )
        for comparison in comparisons[:gold]:
            meta_a = comparison.response_a.meta.get("pku_saferlhf", {})
            meta_b = comparison.response_b.meta.get("pku_saferlhf", {})
            a_safe = bool(meta_a.get("is_response_0_safe", True))
            b_safe = bool(meta_b.get("is_response_1_safe", True))
            labels = {
                "helpfulness": "a",
                "harmlessness": "a" if a_safe or not b_safe else "b",
                "a_is_safe": a_safe,
                "b_is_safe": b_safe,
            }
            set_gold(session=session, actor=admin, project=project, comparison=comparison, labels=labels)
    finally:
        session.close()
        engine.dispose()  # type: ignore[attr-defined]
