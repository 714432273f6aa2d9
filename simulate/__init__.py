"""Simulated annotators for the platform: K bots that label pairs with the toy world's judges.

They work through the REST API exactly as people do (accounts and tokens made by an admin, then
claim and submit through ``saferlhf_client.AsyncClient``), never through the database, so the demo
and the tests exercise the real queue, leases, overlap and quality figures. Their noise, position
bias and spammer share are settings (``simulate.labels``).

    python -m simulate --url http://127.0.0.1:8000 --token $ADMIN_TOKEN --project 1 --bots 5
    saferlhf simulate --project 1 --bots 5 --noise 0.1 --spammers 0.2 --until-empty

This package may import ``saferlhf_client`` and the torch-free judges of ``training.toyworld``;
never ``backend`` or ``worker`` (an import contract in pyproject.toml checks it).
"""

from simulate.bots import Bot, CrowdSettings, Tally, enlist_bots, project_categories, run_bots
from simulate.labels import BotProfile, Labeller

__all__ = [
    "Bot",
    "BotProfile",
    "CrowdSettings",
    "Labeller",
    "Tally",
    "enlist_bots",
    "project_categories",
    "run_bots",
]
