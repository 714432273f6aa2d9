"""The round lifecycle as a table: which state follows which, and which job kinds run in each.

draft -> generating -> collecting -> training -> policy -> evaluating -> completed; any active
state may fail (a stage's job failed) or be cancelled (an admin). A failed round is retried into
the stage that failed (round.failed_stage), where only the jobs that failed run again.
"""

from __future__ import annotations

from backend.domain.enums import RoundState

# The stages that run jobs, in order; each one's successor on success.
STAGE_ORDER: tuple[RoundState, ...] = (
    RoundState.generating,
    RoundState.collecting,
    RoundState.training,
    RoundState.policy,
    RoundState.evaluating,
)
NEXT_STATE: dict[RoundState, RoundState] = {
    RoundState.draft: RoundState.generating,
    RoundState.generating: RoundState.collecting,
    RoundState.collecting: RoundState.training,
    RoundState.training: RoundState.policy,
    RoundState.policy: RoundState.evaluating,
    RoundState.evaluating: RoundState.completed,
}
ACTIVE_STATES = frozenset(STAGE_ORDER)
FINAL_STATES = frozenset({RoundState.completed, RoundState.cancelled})
# States whose progress is decided by jobs (collecting waits on annotators instead).
JOB_STAGES = frozenset({RoundState.generating, RoundState.training, RoundState.policy, RoundState.evaluating})

ROUND_TRANSITIONS: dict[RoundState, frozenset[RoundState]] = {
    RoundState.draft: frozenset({RoundState.generating, RoundState.cancelled}),
    **{
        state: frozenset({NEXT_STATE[state], RoundState.failed, RoundState.cancelled})
        for state in STAGE_ORDER
    },
    # A retry goes back to the stage that failed (a job stage, or collecting when the snapshot
    # export failed).
    RoundState.failed: frozenset({*STAGE_ORDER, RoundState.cancelled}),
    RoundState.completed: frozenset(),
    RoundState.cancelled: frozenset(),
}


def can_move(current: RoundState, target: RoundState) -> bool:
    return target in ROUND_TRANSITIONS[current]
