"""What one simulated annotator answers for one pair: the toy world's judges, plus its errors.

The judges (training/toyworld/judges.py, docs/design/toyworld.md) give each response a true
helpfulness and a true harm verdict. A bot sees the pair as the platform shows it (left, right)
and answers in those terms, with the errors of docs/design/toyworld.md's crowd:

* ``noise``: each preference (helpfulness, harmlessness) is flipped with this probability,
  independently per axis; an exact tie stays "equal";
* ``position_bias``: with this probability a preference goes to the left (first-shown) response;
* ``safety_error``: each response's safe/unsafe label is flipped with this probability;
* a spammer answers every question at random;
* ``ties``: when the judges score both responses exactly the same, "random" picks one side at
  random, as the toy world's annotators do and as PKU-SafeRLHF's annotators had to (its schema has
  no "equal", and the platform's snapshots leave a pair judged equal on either axis out of the
  training data); "equal" answers "equal".

Ties are common on the policy's own samples: every safe answer to a benign prompt has the same
true cost, so with ties="equal" nearly every benign pair would be left out of the reward model's
data. With all rates 0 and ties="equal" the answer is exactly the judges' labels.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from saferlhf_client import Answer, ResponseLabel
from saferlhf_client.models import Position
from training.toyworld.grammar import prompt_topic
from training.toyworld.judges import HarmVerdict, judge_harm, judge_helpfulness

SEVERITIES = (1, 2, 3)
Ties = Literal["random", "equal"]


@dataclass(frozen=True)
class BotProfile:
    """How one bot errs. Rates are probabilities in [0, 1]."""

    noise: float = 0.0
    position_bias: float = 0.0
    safety_error: float = 0.0
    spammer: bool = False
    ties: Ties = "random"

    def __post_init__(self) -> None:
        if self.ties not in ("random", "equal"):
            raise ValueError(f"ties must be 'random' or 'equal', got {self.ties!r}")
        for name in ("noise", "position_bias", "safety_error"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be between 0 and 1, got {value}")


def true_preference(left: float, right: float, *, higher_is_better: bool) -> Position:
    """The judges' preference between two scores, "equal" on an exact tie."""
    if left == right:
        return "equal"
    return "left" if (left > right) == higher_is_better else "right"


class Labeller:
    """Labels pairs for one bot. ``categories`` maps the taxonomy's labels (the names the judges
    use, e.g. "Privacy Violation") to the project's category keys (e.g. "privacy_violation")."""

    def __init__(self, profile: BotProfile, categories: Mapping[str, str], rng: random.Random) -> None:
        if not categories:
            raise ValueError("the project has no harm categories")
        self.profile = profile
        self.categories = dict(categories)
        self.rng = rng

    def answer(self, prompt: str, left: str, right: str) -> Answer:
        if self.profile.spammer:
            return self._random_answer()
        harm_left, harm_right = judge_harm(prompt, left), judge_harm(prompt, right)
        helpful = true_preference(
            judge_helpfulness(prompt, left), judge_helpfulness(prompt, right), higher_is_better=True
        )
        harmless = true_preference(harm_left.cost, harm_right.cost, higher_is_better=False)
        return Answer(
            left=self._safety(prompt, harm_left),
            right=self._safety(prompt, harm_right),
            helpfulness=self._err(helpful),
            harmlessness=self._err(harmless),
            confidence=5 if self.profile.noise == 0 else 4,
            time_spent_ms=self.rng.randint(3000, 9000),
        )

    def _err(self, truth: Position) -> Position:
        if truth == "equal" and self.profile.ties == "random":
            truth = self.rng.choice(("left", "right"))
        choice = truth
        if truth != "equal" and self.rng.random() < self.profile.noise:
            choice = "right" if truth == "left" else "left"
        if self.rng.random() < self.profile.position_bias:
            choice = "left"
        return choice

    def _key(self, label: str) -> str:
        # A category the project does not carry is labelled with its first one rather than lost.
        return self.categories.get(label) or next(iter(self.categories.values()))

    def _safety(self, prompt: str, verdict: HarmVerdict) -> ResponseLabel:
        is_safe = verdict.is_safe ^ (self.rng.random() < self.profile.safety_error)
        if is_safe:
            return ResponseLabel(is_safe=True)
        if not verdict.is_safe:
            keys = sorted({self._key(c) for c in verdict.categories}) or [self._key("")]
            return ResponseLabel(False, tuple(keys), verdict.severity)
        # Wrongly flagged unsafe: the bot blames the prompt's category, as a person would.
        topic = prompt_topic(prompt)
        label = topic.harm_category if topic and topic.harm_category else ""
        return ResponseLabel(False, (self._key(label),), 1)

    def _random_answer(self) -> Answer:
        rng = self.rng
        positions: tuple[Position, ...] = ("left", "right", "equal")
        return Answer(
            left=self._random_label(),
            right=self._random_label(),
            helpfulness=rng.choice(positions),
            harmlessness=rng.choice(positions),
            confidence=rng.randint(1, 5),
            time_spent_ms=rng.randint(300, 1200),
        )

    def _random_label(self) -> ResponseLabel:
        if self.rng.random() < 0.5:
            return ResponseLabel(is_safe=True)
        key = self.rng.choice(sorted(self.categories.values()))
        return ResponseLabel(False, (key,), self.rng.choice(SEVERITIES))
