"""The toy world's grammar: building prompts and responses, and parsing them back.

A response is a sequence of clauses, each ended by a full stop: ``"preheat the oven. stir the pan."``.
Parsing is strict, so text a policy invents that is not a known clause parses as ``UNKNOWN``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from training.toyworld.lexicon import (
    ALL_TOPICS,
    FILLERS,
    PROMPT_TEMPLATES,
    REDIRECTS,
    REDTEAM_TEMPLATES,
    REFUSALS,
    Topic,
)


class ClauseKind(enum.Enum):
    STEP = "step"  # a step of a benign topic
    SAFE_STEP = "safe_step"  # a safe general step of a risky topic
    UNSAFE_STEP = "unsafe_step"  # a detailed unsafe step of a risky topic
    REFUSAL = "refusal"
    REDIRECT = "redirect"
    FILLER = "filler"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Clause:
    text: str
    kind: ClauseKind
    topic: Topic | None = None


def _build_word_index() -> dict[str, tuple[Topic, str]]:
    index: dict[str, tuple[Topic, str]] = {}
    for topic in ALL_TOPICS:
        step_kind = "safe" if topic.risky else "step"
        for role, words in (
            (f"{step_kind}_verb", topic.step_verbs),
            (f"{step_kind}_noun", topic.step_nouns),
            ("unsafe_verb", topic.unsafe_verbs),
            ("unsafe_noun", topic.unsafe_nouns),
        ):
            for word in words:
                index[word] = (topic, role)
    return index


_WORD_INDEX = _build_word_index()
_PHRASE_KIND = {
    **dict.fromkeys(REFUSALS, ClauseKind.REFUSAL),
    **dict.fromkeys(REDIRECTS, ClauseKind.REDIRECT),
    **dict.fromkeys(FILLERS, ClauseKind.FILLER),
}
_ROLE_KIND = {
    ("step_verb", "step_noun"): ClauseKind.STEP,
    ("safe_verb", "safe_noun"): ClauseKind.SAFE_STEP,
    ("unsafe_verb", "unsafe_noun"): ClauseKind.UNSAFE_STEP,
}


def step_clause(verb: str, noun: str) -> str:
    return f"{verb} the {noun}"


def join_clauses(clauses: list[str]) -> str:
    """``["a b", "c d"]`` -> ``"a b. c d."``: the response text."""
    return " ".join(f"{clause}." for clause in clauses)


def split_clauses(response: str) -> list[str]:
    """Split a response on full stops; whitespace and case are normalised."""
    parts = (" ".join(part.split()) for part in response.lower().split("."))
    return [part for part in parts if part]


def classify_clause(text: str) -> Clause:
    """Kind (and topic) of one clause, read from its words alone."""
    if text in _PHRASE_KIND:
        return Clause(text, _PHRASE_KIND[text])
    words = text.split()
    if len(words) == 3 and words[1] == "the" and words[0] in _WORD_INDEX and words[2] in _WORD_INDEX:
        verb_topic, verb_role = _WORD_INDEX[words[0]]
        noun_topic, noun_role = _WORD_INDEX[words[2]]
        kind = _ROLE_KIND.get((verb_role, noun_role))
        if kind is not None and verb_topic is noun_topic:
            return Clause(text, kind, verb_topic)
    return Clause(text, ClauseKind.UNKNOWN)


def parse_response(response: str) -> list[Clause]:
    return [classify_clause(text) for text in split_clauses(response)]


@dataclass(frozen=True)
class ToyPrompt:
    text: str
    topic: Topic
    red_team: bool = False


def make_prompt(topic: Topic, task: str, obj: str, template: str) -> ToyPrompt:
    red_team = template in REDTEAM_TEMPLATES
    return ToyPrompt(template.format(task=task, object=obj), topic, red_team)


def all_prompts(red_team: bool = False) -> list[ToyPrompt]:
    """Every prompt of the world, in a fixed order (normal or red-team variants)."""
    prompts: list[ToyPrompt] = []
    for topic in ALL_TOPICS:
        if red_team:
            if not topic.risky:
                continue
            combos = [
                (t, o, tpl)
                for tpl in REDTEAM_TEMPLATES
                for t in topic.redteam_tasks
                for o in topic.redteam_objects
            ]
        else:
            combos = [(t, o, tpl) for tpl in PROMPT_TEMPLATES for t in topic.tasks for o in topic.objects]
        prompts.extend(make_prompt(topic, t, o, tpl) for t, o, tpl in combos)
    return prompts


_PROMPT_INDEX: dict[str, Topic] = {word: topic for topic in ALL_TOPICS for word in topic.prompt_words()}


def prompt_topic(prompt: str) -> Topic | None:
    """The topic a prompt asks about: the topic owning most of its words (None if no word matches).

    The prompt template, if present, is stripped first, so templated text works as well.
    """
    text = prompt
    if "USER:" in text:
        text = text.split("USER:", 1)[1].rsplit("ASSISTANT:", 1)[0]
    votes: dict[str, int] = {}
    for word in text.lower().split():
        topic = _PROMPT_INDEX.get(word)
        if topic is not None:
            votes[topic.name] = votes.get(topic.name, 0) + 1
    if not votes:
        return None
    best = max(sorted(votes), key=lambda name: votes[name])
    return next(topic for topic in ALL_TOPICS if topic.name == best)
