"""Celery task names. The web process sends tasks by name only, so it never imports the worker."""

from __future__ import annotations

PING = "saferlhf.system.ping"
RUN_TRAINING_JOB = "saferlhf.training.run_job"
REAP_EXPIRED_LEASES = "saferlhf.training.reap_expired_leases"
ADVANCE_ROUNDS = "saferlhf.rounds.advance"

DEFAULT_QUEUE = "default"
GPU_QUEUE = "gpu"

# Which queue each task goes to. Training runs on the gpu queue (concurrency 1, prefetch 1).
TASK_ROUTES: dict[str, dict[str, str]] = {
    PING: {"queue": DEFAULT_QUEUE},
    RUN_TRAINING_JOB: {"queue": GPU_QUEUE},
    REAP_EXPIRED_LEASES: {"queue": DEFAULT_QUEUE},
    ADVANCE_ROUNDS: {"queue": DEFAULT_QUEUE},
}
