"""Red-team intake: annotators and admins write adversarial prompts aimed at a harm category of
the project's taxonomy; reviewers and admins accept or reject them; accepted prompts that no round
has used yet enter the next launched round's prompt set (the launch sets their round_id).

A red-team prompt is an ordinary `prompt` row (is_red_team, harm_category, source "red-team") with
its author and review state, so it is deduplicated exactly like an imported prompt: by the sha256
of its normalised text, unique per project.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.db.models import Project, Prompt
from backend.domain.caller import Caller
from backend.domain.errors import Conflict, InvalidInput, NotFound
from backend.domain.taxonomy import category_lookup
from backend.services.imports.rows import MAX_PROMPT_CHARS, content_hash, normalise_text

SOURCE = "red-team"
PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
REVIEW_STATES = (PENDING, ACCEPTED, REJECTED)
MIN_PROMPT_CHARS = 10
Decision = Literal["accept", "reject"]
DECISIONS: dict[str, str] = {"accept": ACCEPTED, "reject": REJECTED}


@dataclass(frozen=True)
class RedTeamCounts:
    """How a set of red-team prompts fared: `used` counts accepted prompts a round has taken."""

    submitted: int = 0
    pending: int = 0
    accepted: int = 0
    rejected: int = 0
    used: int = 0


def _category_key(project: Project, harm_category: str) -> str:
    """The taxonomy key for any accepted spelling (key or label); a clear message otherwise."""
    value = harm_category.strip()
    if not value:
        raise InvalidInput("choose the harm category the prompt aims at", code="harm_category_missing")
    lookup = category_lookup(project.harm_taxonomy)
    key = lookup.get(value) or lookup.get(value.lower())
    if key is None:
        raise InvalidInput(f"'{value}' is not a harm category of this project", code="harm_category_unknown")
    return key


def _clean_text(text: str) -> str:
    value = normalise_text(text)
    if len(value) < MIN_PROMPT_CHARS:
        raise InvalidInput(
            f"write a prompt of at least {MIN_PROMPT_CHARS} characters", code="prompt_too_short"
        )
    if len(value) > MAX_PROMPT_CHARS:
        raise InvalidInput(f"the prompt is longer than {MAX_PROMPT_CHARS} characters", code="prompt_too_long")
    if "\x00" in value:
        raise InvalidInput("the prompt contains a NUL character", code="prompt_invalid")
    return value


def _duplicate(session: Session, project_id: int, digest: str) -> Conflict:
    existing = session.scalar(
        select(Prompt).where(Prompt.project_id == project_id, Prompt.content_hash == digest)
    )
    if existing is not None and existing.is_red_team:
        where = f"red-team prompt #{existing.id}, {existing.review_state or 'imported'}"
    else:
        where = f"prompt #{existing.id}" if existing is not None else "a prompt"
    return Conflict(
        f"this prompt is already in the project ({where}); write a different one",
        code="duplicate_prompt",
    )


def submit_red_team_prompt(
    *, session: Session, caller: Caller, project: Project, text: str, harm_category: str
) -> Prompt:
    """Store a pending red-team prompt. The caller's access to the project is checked by the edge.
    A duplicate (same normalised text anywhere in the project) is refused with Conflict; the
    insert itself is ON CONFLICT DO NOTHING, so two people sending the same text at once get one
    prompt and one clear refusal, never a 500."""
    value = _clean_text(text)
    key = _category_key(project, harm_category)
    digest = content_hash(value)
    statement = (
        insert(Prompt)
        .values(
            project_id=project.id,
            text=value,
            content_hash=digest,
            source=SOURCE,
            tags=[],
            is_red_team=True,
            harm_category=key,
            meta={},
            author_id=caller.id,
            review_state=PENDING,
        )
        .on_conflict_do_nothing(index_elements=["project_id", "content_hash"])
        .returning(Prompt.id)
    )
    new_id = session.scalar(statement)
    if new_id is None:
        session.rollback()
        raise _duplicate(session, project.id, digest)
    session.commit()
    prompt = session.get(Prompt, new_id)
    assert prompt is not None
    return prompt


def _scope(project_id: int, author_id: int | None, review_state: str | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Prompt.project_id == project_id, Prompt.review_state.is_not(None)]
    if author_id is not None:
        where.append(Prompt.author_id == author_id)
    if review_state is not None:
        if review_state not in REVIEW_STATES:
            raise InvalidInput(
                f"review state must be one of {', '.join(REVIEW_STATES)}", code="review_state_unknown"
            )
        where.append(Prompt.review_state == review_state)
    return where


def list_red_team_prompts(
    *,
    session: Session,
    project_id: int,
    author_id: int | None = None,
    review_state: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> Sequence[Prompt]:
    """Red-team prompts of a project (newest first), optionally one author's or one state's."""
    query = (
        select(Prompt)
        .where(*_scope(project_id, author_id, review_state))
        .order_by(Prompt.created_at.desc(), Prompt.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return session.scalars(query).all()


def red_team_counts(*, session: Session, project_id: int, author_id: int | None = None) -> RedTeamCounts:
    """Counts per review state, and how many accepted prompts a round has used."""

    def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.count(case((condition, 1)))

    row = session.execute(
        select(
            func.count(),
            count_if(Prompt.review_state == PENDING),
            count_if(Prompt.review_state == ACCEPTED),
            count_if(Prompt.review_state == REJECTED),
            count_if((Prompt.review_state == ACCEPTED) & Prompt.round_id.is_not(None)),
        ).where(*_scope(project_id, author_id, None))
    ).one()
    submitted, pending, accepted, rejected, used = (int(v) for v in row)
    return RedTeamCounts(submitted, pending, accepted, rejected, used)


def count_waiting_red_team(*, session: Session, project_id: int) -> int:
    """Accepted red-team prompts no round has used yet: the next round to launch takes all of them."""
    query = select(func.count()).where(
        Prompt.project_id == project_id,
        Prompt.is_red_team.is_(True),
        Prompt.review_state == ACCEPTED,
        Prompt.round_id.is_(None),
    )
    return int(session.scalar(query) or 0)


def get_red_team_prompt(*, session: Session, prompt_id: int) -> Prompt:
    prompt = session.get(Prompt, prompt_id)
    if prompt is None or prompt.review_state is None:
        raise NotFound(f"red-team prompt {prompt_id} not found")
    return prompt


def review_red_team_prompt(*, session: Session, caller: Caller, prompt_id: int, decision: str) -> Prompt:
    """Accept or reject. A decision may be changed until a round has taken the prompt; after that
    the round's data depends on it and the decision is final (Conflict)."""
    state = DECISIONS.get(decision)
    if state is None:
        raise InvalidInput("the decision must be 'accept' or 'reject'", code="decision_unknown")
    prompt = session.scalar(
        select(Prompt).where(Prompt.id == prompt_id, Prompt.review_state.is_not(None)).with_for_update()
    )
    if prompt is None:
        raise NotFound(f"red-team prompt {prompt_id} not found")
    if prompt.round_id is not None:
        session.rollback()
        raise Conflict(
            f"red-team prompt {prompt_id} is already part of a round; its review can no longer change",
            code="prompt_in_round",
        )
    prompt.review_state = state
    prompt.reviewed_by_id = caller.id
    prompt.reviewed_at = utcnow()
    session.commit()
    return prompt
