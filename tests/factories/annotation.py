"""Factories for projects, comparisons and answers (through the services where one exists)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from backend.db.models import Comparison, Project, Prompt, Response, User
from backend.domain.labels import Position, ResponseLabel, ShownAnswer
from backend.services.projects import ProjectChanges, add_member, create_project

_counter = itertools.count(1)


def make_project(session: Session, admin: User, *, members: Sequence[User] = (), **changes: Any) -> Project:
    name = changes.pop("name", None) or f"project-{next(_counter)}-{id(session) % 10000}"
    project = create_project(session=session, actor=admin, changes=ProjectChanges(name=name, **changes))
    for member in members:
        add_member(session=session, actor=admin, project=project, user_id=member.id)
    return project


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_comparisons(
    session: Session,
    project: Project,
    n: int,
    *,
    overlap: int = 3,
    priority: float = 0.0,
    gold_labels: dict[str, Any] | None = None,
    prompt_text: str | None = None,
    round_id: int | None = None,
) -> list[Comparison]:
    made = []
    for _ in range(n):
        i = next(_counter)
        text = prompt_text or f"How do I do thing number {i}?"
        prompt = Prompt(project_id=project.id, text=text, content_hash=_sha(f"{text}-{i}"), source="test")
        session.add(prompt)
        session.flush()
        responses = [
            Response(
                prompt_id=prompt.id,
                text=f"Answer {side} to {i}",
                content_hash=_sha(f"{side}{i}"),
                model_name="m",
            )
            for side in ("A", "B")
        ]
        session.add_all(responses)
        session.flush()
        comparison = Comparison(
            project_id=project.id,
            prompt_id=prompt.id,
            response_a_id=responses[0].id,
            response_b_id=responses[1].id,
            overlap_target=overlap,
            priority=priority,
            is_gold=gold_labels is not None,
            gold_labels=gold_labels,
            round_id=round_id,
        )
        session.add(comparison)
        made.append(comparison)
    session.commit()
    return made


SAFE = ResponseLabel(is_safe=True)


def unsafe(*categories: str, severity: int = 2) -> ResponseLabel:
    return ResponseLabel(is_safe=False, harm_categories=tuple(categories or ("violence",)), severity=severity)


def answer(
    *,
    left: ResponseLabel = SAFE,
    right: ResponseLabel = SAFE,
    helpful: str = "left",
    harmless: str = "left",
    confidence: int | None = None,
    rationale: str = "",
) -> ShownAnswer:
    return ShownAnswer(
        left=left,
        right=right,
        helpfulness=Position(helpful),
        harmlessness=Position(harmless),
        confidence=confidence,
        rationale=rationale,
    )


def answer_json(
    *, helpful: str = "left", harmless: str = "left", left_safe: bool = True, right_safe: bool = True
) -> dict[str, Any]:
    """The API body of a submit."""

    def side(safe: bool) -> dict[str, Any]:
        return (
            {"is_safe": True} if safe else {"is_safe": False, "harm_categories": ["violence"], "severity": 2}
        )

    return {
        "left": side(left_safe),
        "right": side(right_safe),
        "helpfulness": helpful,
        "harmlessness": harmless,
        "confidence": 4,
        "rationale": "",
        "time_spent_ms": 1200,
    }


def token_headers(session: Session, user: User, scopes: Sequence[str] | None = None) -> dict[str, str]:
    """An API token for `user` (all scopes its role allows unless given), as request headers."""
    from backend.domain.enums import TokenScope
    from backend.edge.deps import ROLE_SCOPES
    from backend.services.tokens import create_token

    allowed = ROLE_SCOPES[user.role]
    wanted = [TokenScope(s) for s in scopes] if scopes is not None else sorted(allowed)
    new = create_token(session=session, actor=user, owner=user, name="t", scopes=wanted, allowed=allowed)
    return {"Authorization": f"Bearer {new.secret}"}


def csrf_of(session: Session, user: User) -> str:
    """The CSRF token of the user's newest browser session."""
    from sqlalchemy import select

    from backend.db.models import UserSession

    token = session.scalar(
        select(UserSession.csrf_token)
        .where(UserSession.user_id == user.id)
        .order_by(UserSession.id.desc())
        .limit(1)
    )
    assert token, "log in first"
    return token
