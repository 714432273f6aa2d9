"""Response styles and the mixture that plays the part of the SFT data (and of its policy's samples).

Benign prompts are mostly answered helpfully; risky prompts get every style, with unsafe-but-helpful
answers the most common and safe-and-helpful ones rarer, so the SFT policy starts clearly unsafe
(docs/design/toyworld.md: about 30-50% on risky prompts) yet sometimes shows RL the safe-helpful way.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from training.toyworld.grammar import join_clauses, step_clause
from training.toyworld.lexicon import BENIGN_TOPICS, FILLERS, REDIRECTS, REFUSALS, Topic


def _steps(rng: random.Random, verbs: tuple[str, ...], nouns: tuple[str, ...], n: int) -> list[str]:
    pairs = [step_clause(v, n_) for v in verbs for n_ in nouns]
    return rng.sample(pairs, n)


def _with_filler(rng: random.Random, clauses: list[str], p: float = 0.3) -> list[str]:
    if rng.random() < p:
        clauses = [rng.choice(FILLERS), *clauses]
    return clauses


def _other_topic(rng: random.Random, topic: Topic) -> Topic:
    return rng.choice([t for t in BENIGN_TOPICS if t is not topic])


def helpful(rng: random.Random, topic: Topic) -> list[str]:
    return _with_filler(rng, _steps(rng, topic.step_verbs, topic.step_nouns, rng.randint(2, 4)))


def partial(rng: random.Random, topic: Topic) -> list[str]:
    other = _other_topic(rng, topic)
    clauses = _steps(rng, topic.step_verbs, topic.step_nouns, 1)
    clauses += _steps(rng, other.step_verbs, other.step_nouns, rng.randint(0, 1))
    clauses.append(rng.choice(FILLERS))
    rng.shuffle(clauses)
    return clauses


def off_topic(rng: random.Random, topic: Topic) -> list[str]:
    other = _other_topic(rng, topic)
    return _with_filler(rng, _steps(rng, other.step_verbs, other.step_nouns, rng.randint(1, 3)))


def refusal(rng: random.Random, topic: Topic) -> list[str]:
    clauses = [rng.choice(REFUSALS)]
    if topic.risky and rng.random() < 0.5:
        clauses.append(rng.choice(REDIRECTS))
    return clauses


def rambling(rng: random.Random, topic: Topic) -> list[str]:
    clauses = _steps(rng, topic.step_verbs, topic.step_nouns, rng.randint(3, 4))
    clauses += rng.sample(FILLERS, 3)
    rng.shuffle(clauses)
    return clauses


def unsafe(rng: random.Random, topic: Topic) -> list[str]:
    clauses = _steps(rng, topic.unsafe_verbs, topic.unsafe_nouns, rng.randint(1, 3))
    clauses += _steps(rng, topic.step_verbs, topic.step_nouns, rng.randint(0, 1))
    rng.shuffle(clauses)
    return _with_filler(rng, clauses)


def safe_helpful(rng: random.Random, topic: Topic) -> list[str]:
    clauses = _steps(rng, topic.step_verbs, topic.step_nouns, rng.randint(1, 3))
    if rng.random() < 0.6:
        clauses.insert(rng.randint(0, len(clauses)), rng.choice(REDIRECTS))
    return clauses


StyleFn = Callable[[random.Random, Topic], list[str]]

BENIGN_STYLES: dict[str, tuple[float, StyleFn]] = {
    "helpful": (0.60, helpful),
    "partial": (0.15, partial),
    "off_topic": (0.10, off_topic),
    "rambling": (0.10, rambling),
    "refusal": (0.05, refusal),
}
RISKY_STYLES: dict[str, tuple[float, StyleFn]] = {
    "unsafe": (0.40, unsafe),
    "safe_helpful": (0.25, safe_helpful),
    "refusal": (0.20, refusal),
    "off_topic": (0.10, off_topic),
    "partial_safe": (0.05, lambda rng, topic: [rng.choice(FILLERS), *safe_helpful(rng, topic)[:1]]),
}


def sample_response(rng: random.Random, topic: Topic) -> tuple[str, str]:
    """(style name, response text) drawn from the SFT mixture for a prompt on ``topic``."""
    styles = RISKY_STYLES if topic.risky else BENIGN_STYLES
    names = list(styles)
    name = rng.choices(names, weights=[styles[n][0] for n in names])[0]
    return name, join_clauses(styles[name][1](rng, topic))
