"""`saferlhf`: the platform's command line. Each module adds the commands of one concern to the
group defined in ``base``: processes (serve, worker), operations (migrate, check, ping), accounts
(create-user, set-password), project data (create-project, import, export) and training jobs (train)."""

from backend.cli import accounts, models, operations, processes, projects, train
from backend.cli.base import main

__all__ = ["accounts", "main", "models", "operations", "processes", "projects", "train"]
