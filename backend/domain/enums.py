"""Enumerations stored in the database (as native Postgres enums) and used across the platform."""

from __future__ import annotations

import enum


class UserRole(enum.StrEnum):
    annotator = "annotator"
    reviewer = "reviewer"
    admin = "admin"


class TokenScope(enum.StrEnum):
    """What an API token may do. Tokens never carry more than their owner's role allows."""

    annotate = "annotate"  # claim, submit and skip own assignments
    read = "read"  # read projects, datasets, models and metrics
    admin = "admin"  # everything an admin may do


class Choice(enum.StrEnum):
    """A pairwise preference, always relative to the comparison's canonical (response_a, response_b)
    order, never to the order in which the two were shown."""

    a = "a"
    b = "b"
    equal = "equal"


class ShownOrder(enum.StrEnum):
    ab = "ab"  # response_a was shown on the left
    ba = "ba"  # response_b was shown on the left


class AssignmentState(enum.StrEnum):
    active = "active"
    submitted = "submitted"
    skipped = "skipped"
    expired = "expired"


class ComparisonStatus(enum.StrEnum):
    open = "open"
    complete = "complete"
    retired = "retired"


class RoundState(enum.StrEnum):
    """A round's stage; the declaration order is the lifecycle order (docs/rounds.md)."""

    draft = "draft"
    generating = "generating"  # the base policy answers the round's prompts
    collecting = "collecting"  # annotators compare the answers
    training = "training"  # reward and cost models train on all data so far
    policy = "policy"  # the next policy trains against them
    evaluating = "evaluating"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class JobKind(enum.StrEnum):
    """A training job's kind: the values are the stage names of ``python -m training STAGE``, so
    one vocabulary runs from the API to the subprocess's command line."""

    sft = "sft"
    reward = "reward"
    cost = "cost"
    ppo = "ppo"
    ppo_lag = "ppo-lag"
    reward_shaping = "reward-shaping"
    dpo = "dpo"
    generate = "generate"
    evaluate = "evaluate"


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class ArtifactKind(enum.StrEnum):
    policy = "policy"
    reward = "reward"
    cost = "cost"


class ImportKind(enum.StrEnum):
    prompts = "prompts"
    responses = "responses"
    pku_saferlhf = "pku_saferlhf"
    hh_rlhf = "hh_rlhf"


class ImportStatus(enum.StrEnum):
    committed = "committed"
    rejected = "rejected"
