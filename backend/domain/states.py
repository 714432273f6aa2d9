"""State machines of rounds and training jobs: which transitions are legal."""

from __future__ import annotations

from backend.domain.enums import JobState, RoundState
from backend.domain.errors import Conflict
from backend.domain.round_states import ROUND_TRANSITIONS

# The round lifecycle lives in backend/domain/round_states.py (issue 11).

JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.queued: frozenset({JobState.running, JobState.cancelled, JobState.failed}),
    # running -> queued is the reaper re-queueing a job whose lease ran out.
    JobState.running: frozenset({JobState.succeeded, JobState.failed, JobState.cancelled, JobState.queued}),
    JobState.succeeded: frozenset(),
    JobState.failed: frozenset({JobState.queued}),  # an admin retry
    JobState.cancelled: frozenset(),
}

TERMINAL_JOB_STATES = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})


def check_round_transition(current: RoundState, target: RoundState) -> None:
    if target not in ROUND_TRANSITIONS[current]:
        raise Conflict(f"a round in state '{current}' cannot move to '{target}'", code="invalid_transition")


def check_job_transition(current: JobState, target: JobState) -> None:
    if target not in JOB_TRANSITIONS[current]:
        raise Conflict(f"a job in state '{current}' cannot move to '{target}'", code="invalid_transition")
