"""Simulated annotators: the crowd of the toy world.

Each annotator compares two responses on two separate axes (more helpful, more harmless) and
labels each response safe or unsafe with harm categories and severity, as PKU-SafeRLHF's
annotators did (docs/design/method.md §1.1, §9). Errors are independent per axis:

* with probability ``noise`` each preference is flipped (independently for the two axes);
* with probability ``position_bias`` a preference goes to the first-shown response instead;
* with probability ``safety_error`` each per-response safety label is flipped;
* a spammer answers every question uniformly at random.

The API does not touch files, so the same code labels the generated training pairs and can drive
the platform's REST API (``SimulatedAnnotator.label(prompt, response_a, response_b)``).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from training.taxonomy import BEAVERTAILS_CATEGORIES, category_dict
from training.toyworld.grammar import prompt_topic
from training.toyworld.judges import HarmVerdict, judge_harm, judge_helpfulness


@dataclass(frozen=True)
class AnnotatorProfile:
    annotator_id: str
    noise: float = 0.1
    position_bias: float = 0.02
    safety_error: float = 0.02
    spammer: bool = False


@dataclass(frozen=True)
class PairLabels:
    """One annotation of a pair, in PKU-SafeRLHF field names (response 0 = a, response 1 = b)."""

    better_response_id: int
    safer_response_id: int
    is_response_0_safe: bool
    is_response_1_safe: bool
    response_0_harm_category: dict[str, bool] = field(repr=False)
    response_1_harm_category: dict[str, bool] = field(repr=False)
    response_0_severity_level: int
    response_1_severity_level: int
    annotator_id: str

    def as_record_fields(self) -> dict[str, Any]:
        return asdict(self)


def true_labels(prompt: str, response_a: str, response_b: str, rng: random.Random) -> PairLabels:
    """The judges' noiseless labels; exact ties in a preference are broken by ``rng``."""
    help_a, help_b = judge_helpfulness(prompt, response_a), judge_helpfulness(prompt, response_b)
    harm_a, harm_b = judge_harm(prompt, response_a), judge_harm(prompt, response_b)
    better = 0 if help_a > help_b else 1 if help_b > help_a else rng.randint(0, 1)
    safer = 0 if harm_a.cost < harm_b.cost else 1 if harm_b.cost < harm_a.cost else rng.randint(0, 1)
    return PairLabels(
        better,
        safer,
        harm_a.is_safe,
        harm_b.is_safe,
        harm_a.category_dict(),
        harm_b.category_dict(),
        harm_a.severity,
        harm_b.severity,
        "judge",
    )


class SimulatedAnnotator:
    """A seeded, noisy annotator. ``label`` is the whole public surface."""

    def __init__(self, profile: AnnotatorProfile, seed: int = 0) -> None:
        self.profile = profile
        self._rng = random.Random(f"{profile.annotator_id}:{seed}")

    def _preference(self, true_choice: int) -> int:
        rng, p = self._rng, self.profile
        if p.spammer:
            return rng.randint(0, 1)
        choice = 1 - true_choice if rng.random() < p.noise else true_choice
        return 0 if rng.random() < p.position_bias else choice

    def _safety(self, prompt: str, verdict: HarmVerdict) -> tuple[bool, dict[str, bool], int]:
        rng, p = self._rng, self.profile
        is_safe = rng.random() < 0.5 if p.spammer else verdict.is_safe ^ (rng.random() < p.safety_error)
        if is_safe:
            return True, category_dict(frozenset()), 0
        if not verdict.is_safe:
            return False, verdict.category_dict(), verdict.severity
        # Wrongly flagged as unsafe: the annotator blames the prompt's category, or guesses one.
        topic = prompt_topic(prompt)
        guess = topic.harm_category if topic and topic.harm_category else rng.choice(BEAVERTAILS_CATEGORIES)
        return False, category_dict(frozenset({guess})), 1

    def label(self, prompt: str, response_a: str, response_b: str) -> PairLabels:
        """Label a pair: which response is more helpful, which more harmless, and each one's safety."""
        truth = true_labels(prompt, response_a, response_b, self._rng)
        safe_a, cats_a, sev_a = self._safety(prompt, judge_harm(prompt, response_a))
        safe_b, cats_b, sev_b = self._safety(prompt, judge_harm(prompt, response_b))
        return PairLabels(
            self._preference(truth.better_response_id),
            self._preference(truth.safer_response_id),
            safe_a,
            safe_b,
            cats_a,
            cats_b,
            sev_a,
            sev_b,
            self.profile.annotator_id,
        )


class AnnotatorPool:
    """A crowd of simulated annotators; each pair goes to one of them at random."""

    def __init__(
        self,
        n_annotators: int = 20,
        *,
        noise: float = 0.1,
        position_bias: float = 0.02,
        safety_error: float = 0.02,
        spammer_share: float = 0.0,
        seed: int = 0,
    ) -> None:
        for name, value in (
            ("noise", noise),
            ("position_bias", position_bias),
            ("safety_error", safety_error),
            ("spammer_share", spammer_share),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if n_annotators < 1:
            raise ValueError("n_annotators must be at least 1")
        n_spammers = round(spammer_share * n_annotators)
        self.annotators = [
            SimulatedAnnotator(
                AnnotatorProfile(f"sim-{i:03d}", noise, position_bias, safety_error, spammer=i < n_spammers),
                seed,
            )
            for i in range(n_annotators)
        ]
        self._rng = random.Random(seed)

    def label(self, prompt: str, response_a: str, response_b: str) -> PairLabels:
        return self._rng.choice(self.annotators).label(prompt, response_a, response_b)
