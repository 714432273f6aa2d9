"""Inter-annotator agreement: Krippendorff's alpha (nominal) and pairwise percent agreement.

A *unit* is one thing several annotators judged (a comparison on one axis, or one response's
safety) and holds the values they gave. Units with fewer than two values carry no information
about agreement and are left out, as Krippendorff prescribes.

alpha = 1 - D_o / D_e, from the coincidence matrix: D_o is the observed disagreement within units,
D_e the disagreement expected by chance from the pooled value frequencies (Krippendorff 2011,
"Computing Krippendorff's Alpha-Reliability"). Percent agreement is the share of agreeing pairs of
annotators within units, the figure the Safe RLHF paper reports (61.7% -> 69.0% helpfulness).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Agreement:
    units: int  # units with at least two values
    pairable_values: int
    alpha: float | None  # None when undefined (no units, or every value identical)
    percent: float | None  # pairwise percent agreement, None without pairs


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable]]) -> float | None:
    pairable = [u for u in units if len(u) >= 2]
    n = sum(len(u) for u in pairable)
    if n < 2:
        return None
    totals: Counter[Hashable] = Counter()
    observed = 0.0
    for unit in pairable:
        counts = Counter(unit)
        totals.update(counts)
        m = len(unit)
        # Ordered pairs of different values within the unit, weighted by 1 / (m_u - 1).
        disagreeing = m * m - sum(c * c for c in counts.values())
        observed += disagreeing / (m - 1)
    expected = (n * n - sum(c * c for c in totals.values())) / (n - 1)
    if expected == 0:
        return None
    return 1.0 - observed / expected


def percent_agreement(units: Sequence[Sequence[Hashable]]) -> float | None:
    agree = pairs = 0
    for unit in units:
        m = len(unit)
        if m < 2:
            continue
        pairs += m * (m - 1) // 2
        agree += sum(c * (c - 1) // 2 for c in Counter(unit).values())
    return agree / pairs if pairs else None


def agreement(units: Sequence[Sequence[Hashable]]) -> Agreement:
    pairable = [u for u in units if len(u) >= 2]
    return Agreement(
        units=len(pairable),
        pairable_values=sum(len(u) for u in pairable),
        alpha=krippendorff_alpha_nominal(pairable),
        percent=percent_agreement(pairable),
    )
