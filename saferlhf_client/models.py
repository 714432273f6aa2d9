"""Typed results of the Safe RLHF platform API (plain dataclasses, no dependency on the server)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Position = Literal["left", "right", "equal"]
Role = Literal["annotator", "reviewer", "admin"]
Scope = Literal["annotate", "read", "admin"]
ImportKind = Literal["prompts", "responses", "pku_saferlhf", "hh_rlhf"]


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True)
class ResponseLabel:
    """Safety of one response. A safe response has no categories and severity 0."""

    is_safe: bool
    harm_categories: tuple[str, ...] = ()
    severity: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "is_safe": self.is_safe,
            "harm_categories": list(self.harm_categories),
            "severity": self.severity,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResponseLabel:
        return cls(
            bool(data["is_safe"]), tuple(data.get("harm_categories", ())), int(data.get("severity", 0))
        )


SAFE = ResponseLabel(is_safe=True)


def unsafe(*categories: str, severity: int = 2) -> ResponseLabel:
    return ResponseLabel(is_safe=False, harm_categories=tuple(categories), severity=severity)


@dataclass(frozen=True)
class Answer:
    """One annotator's answer, in the terms they saw: the left and the right response."""

    left: ResponseLabel
    right: ResponseLabel
    helpfulness: Position
    harmlessness: Position
    confidence: int | None = None
    rationale: str = ""
    time_spent_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "left": self.left.to_json(),
            "right": self.right.to_json(),
            "helpfulness": self.helpfulness,
            "harmlessness": self.harmlessness,
            "confidence": self.confidence,
            "rationale": self.rationale,
            "time_spent_ms": self.time_spent_ms,
        }


@dataclass(frozen=True)
class Task:
    """A leased comparison: the prompt and the two responses in the order to show them."""

    assignment_id: int
    comparison_id: int
    project_id: int
    lease_token: str
    state: str
    expires_at: dt.datetime | None
    prompt: str
    left: str
    right: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        return cls(
            assignment_id=data["assignment_id"],
            comparison_id=data["comparison_id"],
            project_id=data["project_id"],
            lease_token=data["lease_token"],
            state=data["state"],
            expires_at=_time(data.get("expires_at")),
            prompt=data["prompt"],
            left=data["left"],
            right=data["right"],
        )


@dataclass(frozen=True)
class Warning:
    code: str
    message: str


@dataclass(frozen=True)
class Annotation:
    id: int
    assignment_id: int
    comparison_id: int
    project_id: int
    answer: Answer
    warnings: tuple[Warning, ...]
    created_at: dt.datetime | None
    replayed: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any], replayed: bool = False) -> Annotation:
        answer = Answer(
            left=ResponseLabel.from_json(data["left"]),
            right=ResponseLabel.from_json(data["right"]),
            helpfulness=data["helpfulness"],
            harmlessness=data["harmlessness"],
            confidence=data.get("confidence"),
            rationale=data.get("rationale", ""),
            time_spent_ms=data.get("time_spent_ms", 0),
        )
        warnings = tuple(Warning(w["code"], w["message"]) for w in data.get("warnings", []))
        return cls(
            id=data["id"],
            assignment_id=data["assignment_id"],
            comparison_id=data["comparison_id"],
            project_id=data["project_id"],
            answer=answer,
            warnings=warnings,
            created_at=_time(data.get("created_at")),
            replayed=replayed,
        )


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    description: str
    guidelines_md: str
    harm_taxonomy: tuple[dict[str, Any], ...]
    severity_levels: tuple[dict[str, Any], ...]
    default_overlap: int
    gold_rate: float
    lease_seconds: int

    @property
    def category_keys(self) -> tuple[str, ...]:
        return tuple(str(c["key"]) for c in self.harm_taxonomy)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Project:
        return cls(
            id=data["id"],
            name=data["name"],
            description=data.get("description", ""),
            guidelines_md=data.get("guidelines_md", ""),
            harm_taxonomy=tuple(data.get("harm_taxonomy", ())),
            severity_levels=tuple(data.get("severity_levels", ())),
            default_overlap=data["default_overlap"],
            gold_rate=data["gold_rate"],
            lease_seconds=data["lease_seconds"],
        )


@dataclass(frozen=True)
class User:
    id: int
    email: str
    display_name: str
    role: str
    is_active: bool
    generated_password: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> User:
        return cls(
            data["id"],
            data["email"],
            data["display_name"],
            data["role"],
            data["is_active"],
            data.get("generated_password"),
        )


@dataclass(frozen=True)
class Token:
    id: int
    user_id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    secret: str | None = None  # only when just created

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Token:
        return cls(
            data["id"],
            data["user_id"],
            data["name"],
            data["prefix"],
            tuple(data["scopes"]),
            data.get("token"),
        )


@dataclass(frozen=True)
class ImportResult:
    id: int
    status: str
    total_rows: int
    accepted_rows: int
    rejected_rows: int
    duplicate_rows: int
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def imported_rows(self) -> int:
        """Rows that added something; duplicates were valid but already there."""
        return self.accepted_rows - self.duplicate_rows

    @property
    def rejected(self) -> list[dict[str, Any]]:
        return list(self.report.get("rejected", []))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportResult:
        return cls(
            data["id"],
            data["status"],
            data["total_rows"],
            data["accepted_rows"],
            data["rejected_rows"],
            data["duplicate_rows"],
            data.get("report", {}),
        )


@dataclass(frozen=True)
class Snapshot:
    id: int
    project_id: int
    content_sha256: str
    row_count: int
    vote_count: int
    files: tuple[str, ...]
    stats: dict[str, Any]
    created: bool = True

    @classmethod
    def from_json(cls, data: dict[str, Any], created: bool = True) -> Snapshot:
        return cls(
            data["id"],
            data["project_id"],
            data["content_sha256"],
            data["row_count"],
            data["vote_count"],
            tuple(data.get("files", ())),
            data.get("stats", {}),
            created,
        )


def as_dict(item: Any) -> dict[str, Any]:
    return asdict(item)
