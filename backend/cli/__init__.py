"""`saferlhf`: the platform's command line. Each module adds the commands of one concern to the
group defined in ``base``: processes (serve, worker), operations (migrate, check, ping), accounts
(create-user, set-password, create-token), project data (create-project, import, export), training
jobs (train) and bot annotators (simulate)."""

from backend.cli import accounts, models, operations, processes, projects, simulate, tokens, train
from backend.cli.base import main

__all__ = [
    "accounts",
    "main",
    "models",
    "operations",
    "processes",
    "projects",
    "simulate",
    "tokens",
    "train",
]
