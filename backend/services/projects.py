"""Projects: create and edit them (taxonomy, guidelines, annotation policy) and manage members."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.models import AuditEvent, Comparison, Project, ProjectMember, User
from backend.domain.enums import ComparisonStatus
from backend.domain.errors import Conflict, InvalidInput, NotFound
from backend.domain.taxonomy import (
    KEY_RE,
    MAX_SEVERITY,
    default_severity_levels,
    default_taxonomy,
)

MAX_OVERLAP = 1000
MAX_GUIDELINES = 100_000


@dataclass(frozen=True)
class ProjectChanges:
    """Fields an admin may change; None leaves a field as it is."""

    name: str | None = None
    description: str | None = None
    guidelines_md: str | None = None
    harm_taxonomy: list[dict[str, Any]] | None = None
    severity_levels: list[dict[str, Any]] | None = None
    default_overlap: int | None = None
    gold_rate: float | None = None
    lease_seconds: int | None = None


def validate_taxonomy(taxonomy: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not taxonomy:
        raise InvalidInput("the harm taxonomy needs at least one category", code="invalid_taxonomy")
    seen: set[str] = set()
    clean = []
    for cat in taxonomy:
        key, label = str(cat.get("key", "")).strip(), str(cat.get("label", "")).strip()
        if not KEY_RE.match(key):
            raise InvalidInput(
                f"category key {key!r} must be lower-case letters, digits and _ (max 64)",
                code="invalid_taxonomy",
            )
        if key in seen:
            raise InvalidInput(f"category key {key!r} appears twice", code="invalid_taxonomy")
        if not label or len(label) > 200:
            raise InvalidInput(f"category {key!r} needs a label of 1-200 characters", code="invalid_taxonomy")
        seen.add(key)
        entry = {"key": key, "label": label, "description": str(cat.get("description", ""))[:1000]}
        if str(cat.get("short") or "").strip():
            entry["short"] = str(cat["short"]).strip()[:40]
        clean.append(entry)
    return clean


def validate_severity_levels(levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The annotation table's CHECK constraints fix the levels at 0..3; only the wording can change.
    numbers = sorted(int(level.get("level", -1)) for level in levels)
    if numbers != list(range(MAX_SEVERITY + 1)):
        raise InvalidInput(
            f"severity levels must be exactly 0..{MAX_SEVERITY} (0 = safe)", code="invalid_severity"
        )
    return [
        {
            "level": int(level["level"]),
            "label": str(level.get("label", "")).strip()[:100] or str(level["level"]),
            "description": str(level.get("description", ""))[:1000],
        }
        for level in sorted(levels, key=lambda item: int(item["level"]))
    ]


def _validate_policy(changes: ProjectChanges) -> None:
    if changes.name is not None and not 1 <= len(changes.name.strip()) <= 200:
        raise InvalidInput("the project name must have 1-200 characters", code="invalid_name")
    if changes.default_overlap is not None and not 1 <= changes.default_overlap <= MAX_OVERLAP:
        raise InvalidInput(f"overlap must be between 1 and {MAX_OVERLAP}", code="invalid_overlap")
    if changes.gold_rate is not None and not 0.0 <= changes.gold_rate <= 1.0:
        raise InvalidInput("the gold rate must be between 0 and 1", code="invalid_gold_rate")
    if changes.lease_seconds is not None and not 30 <= changes.lease_seconds <= 7 * 24 * 3600:
        raise InvalidInput("the lease must last between 30 seconds and 7 days", code="invalid_lease")
    if changes.guidelines_md is not None and len(changes.guidelines_md) > MAX_GUIDELINES:
        raise InvalidInput(
            f"guidelines are limited to {MAX_GUIDELINES} characters", code="invalid_guidelines"
        )


def create_project(*, session: Session, actor: User, changes: ProjectChanges) -> Project:
    if changes.name is None:
        raise InvalidInput("a project needs a name", code="invalid_name")
    _validate_policy(changes)
    project = Project(
        name=changes.name.strip(),
        description=changes.description or "",
        guidelines_md=changes.guidelines_md or "",
        harm_taxonomy=validate_taxonomy(changes.harm_taxonomy or default_taxonomy()),
        severity_levels=validate_severity_levels(changes.severity_levels or default_severity_levels()),
        default_overlap=changes.default_overlap or 3,
        gold_rate=0.1 if changes.gold_rate is None else changes.gold_rate,
        lease_seconds=changes.lease_seconds or 600,
        created_by_id=actor.id,
    )
    session.add(project)
    _flush_unique_name(session, project.name)
    session.add(
        AuditEvent(actor_id=actor.id, action="project.create", object_type="project", object_id=project.id)
    )
    session.commit()
    return project


def _flush_unique_name(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"a project named {name!r} already exists", code="project_exists") from exc


def update_project(*, session: Session, actor: User, project: Project, changes: ProjectChanges) -> Project:
    _validate_policy(changes)
    if changes.harm_taxonomy is not None:
        project.harm_taxonomy = validate_taxonomy(changes.harm_taxonomy)
    if changes.severity_levels is not None:
        project.severity_levels = validate_severity_levels(changes.severity_levels)
    for field in ("description", "guidelines_md", "default_overlap", "gold_rate", "lease_seconds"):
        value = getattr(changes, field)
        if value is not None:
            setattr(project, field, value)
    if changes.name is not None:
        project.name = changes.name.strip()
    _flush_unique_name(session, project.name)
    session.add(
        AuditEvent(actor_id=actor.id, action="project.update", object_type="project", object_id=project.id)
    )
    session.commit()
    return project


def taxonomy_keys(project: Project) -> frozenset[str]:
    return frozenset(str(c["key"]) for c in project.harm_taxonomy)


def list_members(*, session: Session, project: Project) -> list[User]:
    query = (
        select(User)
        .join(ProjectMember, ProjectMember.user_id == User.id)
        .where(ProjectMember.project_id == project.id)
        .order_by(User.email)
    )
    return list(session.scalars(query))


def add_member(*, session: Session, actor: User, project: Project, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    exists = session.scalar(
        select(ProjectMember.id).where(
            ProjectMember.project_id == project.id, ProjectMember.user_id == user_id
        )
    )
    if exists is None:
        session.add(ProjectMember(project_id=project.id, user_id=user_id))
        session.add(
            AuditEvent(
                actor_id=actor.id,
                action="project.member_add",
                object_type="project",
                object_id=project.id,
                detail={"user_id": user_id},
            )
        )
        session.commit()
    return user


def remove_member(*, session: Session, actor: User, project: Project, user_id: int) -> None:
    result = session.execute(
        delete(ProjectMember).where(ProjectMember.project_id == project.id, ProjectMember.user_id == user_id)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"user {user_id} is not a member of this project")
    session.add(
        AuditEvent(
            actor_id=actor.id,
            action="project.member_remove",
            object_type="project",
            object_id=project.id,
            detail={"user_id": user_id},
        )
    )
    session.commit()


@dataclass(frozen=True)
class ProjectCounts:
    prompts: int
    comparisons: int
    open_comparisons: int
    complete_comparisons: int
    gold_comparisons: int
    annotations: int


def project_counts(*, session: Session, project: Project) -> ProjectCounts:
    from backend.db.models import Annotation, Prompt

    row = session.execute(
        select(
            func.count(),
            func.count().filter(Comparison.status == ComparisonStatus.open),
            func.count().filter(Comparison.status == ComparisonStatus.complete),
            func.count().filter(Comparison.is_gold.is_(True)),
        ).where(Comparison.project_id == project.id)
    ).one()
    prompts = session.scalar(select(func.count()).where(Prompt.project_id == project.id)) or 0
    annotations = (
        session.scalar(
            select(func.count())
            .select_from(Annotation)
            .join(Comparison, Comparison.id == Annotation.comparison_id)
            .where(Comparison.project_id == project.id)
        )
        or 0
    )
    return ProjectCounts(
        prompts=int(prompts),
        comparisons=int(row[0]),
        open_comparisons=int(row[1]),
        complete_comparisons=int(row[2]),
        gold_comparisons=int(row[3]),
        annotations=int(annotations),
    )
