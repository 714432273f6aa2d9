"""Per-annotator quality: gold accuracy per axis and per harm category, position bias,
self-consistency, agreement with the other annotators, and the reliability weight.

Safety errors are asymmetric (docs/design/annotation.md §4 idea 4): a *missed* unsafe response
(gold unsafe, judged safe) is counted apart from a *false alarm* (gold safe, judged unsafe), and
likewise per harm category (a gold category not ticked vs a category ticked that gold lacks).

Reliability: the gold accuracy on the two preference axes, pulled towards PRIOR_ACCURACY by
PRIOR_STRENGTH pseudo-items so that two lucky answers do not make an expert. The vote weight is
the log-odds log((K-1) p / (1-p)) with K = 3 options (a, b, equal): the weight under which
weighted majority is the optimal rule for independent annotators of accuracy p, and 0 at chance.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from backend.services.quality.votes import Vote, by_comparison

AXES = ("helpfulness", "harmlessness")
PRIOR_ACCURACY = 0.7
PRIOR_STRENGTH = 4.0
MIN_WEIGHT = 0.05
BIAS_MIN_CHOICES = 20
BIAS_P_VALUE = 0.01


@dataclass
class Tally:
    correct: int = 0
    total: int = 0

    @property
    def rate(self) -> float | None:
        return self.correct / self.total if self.total else None

    def add(self, ok: bool) -> None:
        self.total += 1
        self.correct += int(ok)


@dataclass
class CategoryErrors:
    hits: int = 0
    missed: int = 0
    false_alarms: int = 0


@dataclass
class AnnotatorStats:
    annotator_id: int
    annotations: int = 0
    gold_items: int = 0
    gold: dict[str, Tally] = field(default_factory=lambda: {axis: Tally() for axis in (*AXES, "safety")})
    missed_unsafe: int = 0
    false_alarm_unsafe: int = 0
    categories: dict[str, CategoryErrors] = field(default_factory=dict)
    left_choices: int = 0
    sided_choices: int = 0
    inconsistent: int = 0
    with_others: dict[str, Tally] = field(default_factory=lambda: {axis: Tally() for axis in AXES})
    times_ms: list[int] = field(default_factory=list)
    reliability: float = PRIOR_ACCURACY
    weight: float = 0.0

    @property
    def left_rate(self) -> float | None:
        return self.left_choices / self.sided_choices if self.sided_choices else None

    @property
    def position_bias_p(self) -> float | None:
        """Two-sided p-value of 'left and right are equally likely' (normal approximation)."""
        n = self.sided_choices
        if n == 0:
            return None
        z = (self.left_choices - n / 2) / math.sqrt(n / 4)
        return math.erfc(abs(z) / math.sqrt(2))

    @property
    def position_biased(self) -> bool:
        p = self.position_bias_p
        return self.sided_choices >= BIAS_MIN_CHOICES and p is not None and p < BIAS_P_VALUE

    @property
    def inconsistency_rate(self) -> float | None:
        return self.inconsistent / self.annotations if self.annotations else None

    @property
    def median_time_ms(self) -> int | None:
        return int(statistics.median(self.times_ms)) if self.times_ms else None


def reliability_weight(correct: int, total: int) -> tuple[float, float]:
    p = (correct + PRIOR_ACCURACY * PRIOR_STRENGTH) / (total + PRIOR_STRENGTH)
    p = min(max(p, 1 / 3), 0.99)
    return p, max(math.log(2 * p / (1 - p)), MIN_WEIGHT)


def _score_gold(stats: AnnotatorStats, vote: Vote, gold: dict[str, Any]) -> None:
    stats.gold_items += 1
    for axis in AXES:
        if axis in gold:
            stats.gold[axis].add(vote.choice(axis).value == gold[axis])
    for side in ("a", "b"):
        label = vote.side(side)
        if f"{side}_is_safe" in gold:
            truth = bool(gold[f"{side}_is_safe"])
            stats.gold["safety"].add(label.is_safe == truth)
            stats.missed_unsafe += int(not truth and label.is_safe)
            stats.false_alarm_unsafe += int(truth and not label.is_safe)
        if f"{side}_harm_categories" in gold:
            truth_cats = set(gold[f"{side}_harm_categories"])
            given = set(label.harm_categories)
            for key in truth_cats | given:
                errors = stats.categories.setdefault(key, CategoryErrors())
                if key in truth_cats and key in given:
                    errors.hits += 1
                elif key in truth_cats:
                    errors.missed += 1
                else:
                    errors.false_alarms += 1


def _score_against_others(stats: dict[int, AnnotatorStats], votes: list[Vote]) -> None:
    """Leave-one-out: does each vote match the majority of the *other* votes on the comparison?"""
    for group in by_comparison([v for v in votes if not v.is_gold]).values():
        if len(group) < 2:
            continue
        for axis in AXES:
            counts = Counter(v.choice(axis) for v in group)
            for vote in group:
                others = counts.copy()
                others[vote.choice(axis)] -= 1
                top = max(others.values())
                winners = [c for c, n in others.items() if n == top and n > 0]
                if len(winners) == 1:
                    stats[vote.annotator_id].with_others[axis].add(winners[0] == vote.choice(axis))


def annotator_stats(votes: list[Vote], gold: dict[int, dict[str, Any]]) -> dict[int, AnnotatorStats]:
    stats: dict[int, AnnotatorStats] = {}
    for vote in votes:
        s = stats.setdefault(vote.annotator_id, AnnotatorStats(vote.annotator_id))
        s.annotations += 1
        s.times_ms.append(vote.time_spent_ms)
        s.inconsistent += int(bool(vote.warnings))
        for axis in AXES:
            left = vote.chose_left(axis)
            if left is not None:
                s.sided_choices += 1
                s.left_choices += int(left)
        if vote.is_gold and vote.comparison_id in gold:
            _score_gold(s, vote, gold[vote.comparison_id])
    _score_against_others(stats, votes)
    for s in stats.values():
        correct = sum(s.gold[axis].correct for axis in AXES)
        total = sum(s.gold[axis].total for axis in AXES)
        s.reliability, s.weight = reliability_weight(correct, total)
    return stats
