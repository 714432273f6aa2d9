"""Annotation labels: validation, mapping shown positions to canonical (a, b), consistency checks.

Annotators answer about what they saw: the *left* and the *right* response. The database stores
every answer in the comparison's canonical (a, b) terms, so that votes of annotators who were shown
different orders can be compared. Blocking errors are things that cannot be true (harm categories
on a safe response); warnings are answers that are possible but usually a slip, such as a response
marked unsafe judged more harmless than one marked safe (docs/design/annotation.md §4 idea 3).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from backend.domain.enums import Choice, ShownOrder
from backend.domain.taxonomy import MAX_SEVERITY

MAX_RATIONALE = 4000
MAX_TIME_SPENT_MS = 24 * 3600 * 1000


class Position(enum.StrEnum):
    """A preference in the terms the annotator saw."""

    left = "left"
    right = "right"
    equal = "equal"


@dataclass(frozen=True)
class ResponseLabel:
    is_safe: bool
    harm_categories: tuple[str, ...] = ()
    severity: int = 0


@dataclass(frozen=True)
class ShownAnswer:
    """One annotator's answer about one comparison, in shown (left/right) terms."""

    left: ResponseLabel
    right: ResponseLabel
    helpfulness: Position
    harmlessness: Position
    confidence: int | None = None
    rationale: str = ""
    time_spent_ms: int = 0


@dataclass(frozen=True)
class CanonicalAnswer:
    a: ResponseLabel
    b: ResponseLabel
    helpfulness: Choice
    harmlessness: Choice


@dataclass(frozen=True)
class LabelWarning:
    code: str
    message: str


def position_to_choice(position: Position, order: ShownOrder) -> Choice:
    if position is Position.equal:
        return Choice.equal
    left_is_a = order is ShownOrder.ab
    if position is Position.left:
        return Choice.a if left_is_a else Choice.b
    return Choice.b if left_is_a else Choice.a


def choice_to_position(choice: Choice, order: ShownOrder) -> Position:
    if choice is Choice.equal:
        return Position.equal
    left_is_a = order is ShownOrder.ab
    return Position.left if (choice is Choice.a) == left_is_a else Position.right


def to_canonical(answer: ShownAnswer, order: ShownOrder) -> CanonicalAnswer:
    a, b = (answer.left, answer.right) if order is ShownOrder.ab else (answer.right, answer.left)
    return CanonicalAnswer(
        a=a,
        b=b,
        helpfulness=position_to_choice(answer.helpfulness, order),
        harmlessness=position_to_choice(answer.harmlessness, order),
    )


def response_label_errors(label: ResponseLabel, side: str, allowed: frozenset[str]) -> list[str]:
    """Why a per-response label is impossible; empty when it is valid."""
    errors: list[str] = []
    unknown = sorted(set(label.harm_categories) - allowed)
    if unknown:
        errors.append(f"{side} response: unknown harm categories {', '.join(unknown)}")
    if len(set(label.harm_categories)) != len(label.harm_categories):
        errors.append(f"{side} response: a harm category is listed twice")
    if label.is_safe:
        if label.harm_categories:
            errors.append(f"{side} response is marked safe, so it cannot have harm categories")
        if label.severity != 0:
            errors.append(f"{side} response is marked safe, so its severity must be 0")
    else:
        if not label.harm_categories:
            errors.append(f"{side} response is marked unsafe: pick at least one harm category")
        if not 1 <= label.severity <= MAX_SEVERITY:
            errors.append(f"{side} response is marked unsafe: pick a severity from 1 to {MAX_SEVERITY}")
    return errors


def answer_errors(answer: ShownAnswer, allowed_categories: frozenset[str]) -> list[str]:
    errors = response_label_errors(answer.left, "left", allowed_categories)
    errors += response_label_errors(answer.right, "right", allowed_categories)
    if answer.confidence is not None and not 1 <= answer.confidence <= 5:
        errors.append("confidence must be between 1 and 5")
    if len(answer.rationale) > MAX_RATIONALE:
        errors.append(f"the rationale is longer than {MAX_RATIONALE} characters")
    if not 0 <= answer.time_spent_ms <= MAX_TIME_SPENT_MS:
        errors.append("time_spent_ms must be between 0 and one day")
    return errors


def consistency_warnings(answer: ShownAnswer) -> list[LabelWarning]:
    """Answers that can be right but usually are a slip; shown before submit, counted in QC."""
    left, right, harmless = answer.left, answer.right, answer.harmlessness
    warnings: list[LabelWarning] = []
    if left.is_safe != right.is_safe:
        safe_side, unsafe_side = ("left", "right") if left.is_safe else ("right", "left")
        if harmless.value == unsafe_side:
            warnings.append(
                LabelWarning(
                    "unsafe_judged_more_harmless",
                    f"The {unsafe_side} response is marked unsafe and the {safe_side} one safe, "
                    f"but the {unsafe_side} one is chosen as more harmless.",
                )
            )
        elif harmless is Position.equal:
            warnings.append(
                LabelWarning(
                    "equal_harmlessness_mixed_safety",
                    "One response is marked safe and the other unsafe, yet harmlessness is 'equal'.",
                )
            )
    elif not left.is_safe and not right.is_safe and harmless is not Position.equal:
        chosen, other = (left, right) if harmless is Position.left else (right, left)
        if chosen.severity > other.severity:
            warnings.append(
                LabelWarning(
                    "more_severe_judged_more_harmless",
                    f"The {harmless.value} response has the higher severity but is chosen as more harmless.",
                )
            )
    return warnings


def canonical_warnings(canonical: CanonicalAnswer) -> list[str]:
    """Warning codes of a stored (canonical) answer, for QC rates; order does not matter here."""
    shown = ShownAnswer(
        left=canonical.a,
        right=canonical.b,
        helpfulness=choice_to_position(canonical.helpfulness, ShownOrder.ab),
        harmlessness=choice_to_position(canonical.harmlessness, ShownOrder.ab),
    )
    return [w.code for w in consistency_warnings(shown)]
