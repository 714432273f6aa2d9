"""One label per axis from several votes: majority weighted by annotator reliability.

* Preferences (helpfulness, harmlessness): the option with the largest total weight wins; when
  the top two totals are equal the axis is a *tie*, reported as such with no label.
* Safety of each response: weighted vote of safe vs unsafe. A tie is reported and resolved to
  *unsafe*: missing a harmful response costs more than a false alarm (documented in the recipe).
* Harm categories of a response judged unsafe: those ticked by at least half of the weight of the
  annotators who judged it unsafe. Severity: the weighted median of their severities.
* A reviewer's adjudication, when there is one, replaces the votes (the latest one wins).

Raw votes are never changed; aggregation is recomputed from them whenever it is asked for.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from backend.db.models import Adjudication
from backend.domain.enums import Choice
from backend.services.quality.votes import Vote

EPS = 1e-9


@dataclass(frozen=True)
class AxisResult:
    label: Choice | None  # None when tied
    tie: bool
    weights: dict[str, float]  # total weight per option (soft label before normalising)
    votes: dict[str, int]

    @property
    def shares(self) -> dict[str, float]:
        total = sum(self.weights.values())
        return {k: (v / total if total else 0.0) for k, v in self.weights.items()}


@dataclass(frozen=True)
class SideResult:
    is_safe: bool
    tie: bool
    unsafe_share: float
    harm_categories: list[str]
    severity: int


@dataclass(frozen=True)
class Aggregate:
    comparison_id: int
    helpfulness: AxisResult
    harmlessness: AxisResult
    a: SideResult
    b: SideResult
    votes: int
    adjudicated: bool = False
    ties: list[str] = field(default_factory=list)


def _axis(votes: list[Vote], axis: str, weights: dict[int, float]) -> AxisResult:
    totals = {c.value: 0.0 for c in Choice}
    counts = {c.value: 0 for c in Choice}
    for vote in votes:
        choice = vote.choice(axis).value
        totals[choice] += weights.get(vote.annotator_id, 1.0)
        counts[choice] += 1
    ranked = sorted(totals.values(), reverse=True)
    tie = ranked[0] - ranked[1] < EPS
    label = None if tie else Choice(max(totals, key=lambda k: totals[k]))
    return AxisResult(label=label, tie=tie, weights=totals, votes=counts)


def _weighted_median(values: list[tuple[int, float]]) -> int:
    total = sum(w for _, w in values)
    running = 0.0
    for value, weight in sorted(values):
        running += weight
        if running >= total / 2 - EPS:
            return value
    return values[-1][0]


def _side(votes: list[Vote], side: str, weights: dict[int, float]) -> SideResult:
    unsafe_w = safe_w = 0.0
    category_w: dict[str, float] = defaultdict(float)
    severities: list[tuple[int, float]] = []
    for vote in votes:
        w = weights.get(vote.annotator_id, 1.0)
        label = vote.side(side)
        if label.is_safe:
            safe_w += w
            continue
        unsafe_w += w
        severities.append((label.severity, w))
        for key in label.harm_categories:
            category_w[key] += w
    tie = abs(unsafe_w - safe_w) < EPS
    is_safe = safe_w > unsafe_w + EPS
    total = unsafe_w + safe_w
    if is_safe:
        return SideResult(True, tie, unsafe_w / total if total else 0.0, [], 0)
    categories = sorted(k for k, w in category_w.items() if w >= unsafe_w / 2 - EPS)
    if not categories and category_w:
        categories = [max(category_w, key=lambda k: category_w[k])]
    severity = max(_weighted_median(severities), 1) if severities else 1
    return SideResult(False, tie, unsafe_w / total if total else 1.0, categories, severity)


def _adjudicated(comparison_id: int, adj: Adjudication, votes: int) -> Aggregate:
    def axis(choice: Any) -> AxisResult:
        value = Choice(choice)
        return AxisResult(value, False, {c.value: float(c is value) for c in Choice}, {})

    def side(is_safe: bool, cats: list[str], severity: int) -> SideResult:
        return SideResult(
            is_safe, False, 0.0 if is_safe else 1.0, list(cats), 0 if is_safe else max(severity, 1)
        )

    return Aggregate(
        comparison_id=comparison_id,
        helpfulness=axis(adj.helpfulness),
        harmlessness=axis(adj.harmlessness),
        a=side(adj.a_is_safe, adj.a_harm_categories, adj.a_severity),
        b=side(adj.b_is_safe, adj.b_harm_categories, adj.b_severity),
        votes=votes,
        adjudicated=True,
    )


def aggregate(
    comparison_id: int, votes: list[Vote], weights: dict[int, float], adjudication: Adjudication | None = None
) -> Aggregate:
    if adjudication is not None:
        return _adjudicated(comparison_id, adjudication, len(votes))
    helpful, harmless = _axis(votes, "helpfulness", weights), _axis(votes, "harmlessness", weights)
    a, b = _side(votes, "a", weights), _side(votes, "b", weights)
    ties = [name for name, tied in (("helpfulness", helpful.tie), ("harmlessness", harmless.tie)) if tied]
    ties += [f"{s}_is_safe" for s, r in (("a", a), ("b", b)) if r.tie]
    return Aggregate(comparison_id, helpful, harmless, a, b, len(votes), False, ties)


def disagreement(votes: list[Vote]) -> list[str]:
    """Which axes the votes of one comparison disagree on."""
    if len(votes) < 2:
        return []
    axes = []
    for axis in ("helpfulness", "harmlessness"):
        if len({v.choice(axis) for v in votes}) > 1:
            axes.append(axis)
    for side in ("a", "b"):
        if len({v.side(side).is_safe for v in votes}) > 1:
            axes.append(f"{side}_is_safe")
    return axes
