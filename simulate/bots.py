"""K bot annotators against the REST API: accounts through the admin API, work through AsyncClient.

Each bot is a real annotator account with its own `annotate` token, so the platform treats it
exactly like a person: it leases pairs (claim), answers them (submit-and-next, with an
Idempotency-Key), and is measured by the quality report. Nothing here touches the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from saferlhf_client import AsyncClient, Client, Conflict, Task
from saferlhf_client.errors import ApiError
from simulate.labels import BotProfile, Labeller, Ties

logger = logging.getLogger(__name__)
BOT_DOMAIN = "bots.example.com"


@dataclass(frozen=True)
class Bot:
    """One simulated annotator: its account, its token and how it errs."""

    user_id: int
    email: str
    token: str
    token_id: int
    profile: BotProfile


@dataclass(frozen=True)
class CrowdSettings:
    """``spammers`` is the share of the K bots that answer at random (rounded to a whole bot)."""

    bots: int = 5
    noise: float = 0.1
    position_bias: float = 0.05
    safety_error: float = 0.02
    spammers: float = 0.0
    ties: Ties = "random"
    seed: int = 0

    def profiles(self) -> list[BotProfile]:
        if self.bots < 1:
            raise ValueError("--bots must be at least 1")
        if not 0.0 <= self.spammers <= 1.0:
            raise ValueError(f"spammers must be between 0 and 1, got {self.spammers}")
        n_spam = round(self.spammers * self.bots)
        return [
            BotProfile(self.noise, self.position_bias, self.safety_error, spammer=i < n_spam, ties=self.ties)
            for i in range(self.bots)
        ]


@dataclass
class Tally:
    """What the crowd did in one run (per bot email)."""

    submitted: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0

    @property
    def total(self) -> int:
        return sum(self.submitted.values())


def bot_email(project_id: int, index: int) -> str:
    return f"bot{index:02d}.p{project_id}@{BOT_DOMAIN}"


def enlist_bots(admin: Client, project_id: int, profiles: Sequence[BotProfile]) -> list[Bot]:
    """Create (or reuse) one annotator account per profile, make it a member of the project and
    give it a fresh `annotate` token. Running again reuses the same accounts, so the quality
    report follows each bot across runs and rounds."""
    existing = {u.email: u for u in admin.list_users(role="annotator")}
    bots = []
    for index, profile in enumerate(profiles):
        email = bot_email(project_id, index)
        user = existing.get(email)
        if user is None:
            kind = "spammer" if profile.spammer else "bot"
            name = f"{kind} {index:02d} (simulated)"
            user = admin.create_user(email, "annotator", display_name=name)
        admin.add_member(project_id, user.id)
        token = admin.create_token(f"simulate p{project_id}", ["annotate"], user_id=user.id)
        assert token.secret is not None  # a fresh token always carries its secret once
        bots.append(Bot(user.id, email, token.secret, token.id, profile))
    return bots


async def _work(
    url: str,
    bot: Bot,
    project_id: int,
    categories: dict[str, str],
    budget: _Budget,
    tally: Tally,
    *,
    seed: int,
    stop: asyncio.Event | None,
    idle_s: float,
) -> None:
    labeller = Labeller(bot.profile, categories, random.Random(f"{bot.email}:{seed}"))
    async with AsyncClient(url, bot.token) as api:
        task: Task | None = await api.claim_next(project_id)
        while True:
            if task is None:
                # Nothing left for this bot: done, unless the caller keeps it waiting for more
                # (a round's generation may still add pairs).
                if stop is None or stop.is_set() or budget.spent():
                    return
                await _sleep_or_stop(stop, idle_s)
                task = await api.claim_next(project_id)
                continue
            if not budget.take():
                await _give_back(api, task)
                return
            answer = labeller.answer(task.prompt, task.left, task.right)
            try:
                _, task = await api.submit_and_next(task.assignment_id, answer)
            except Conflict:
                # The lease went to someone else or k was reached meanwhile: a normal race.
                tally.conflicts += 1
                budget.refund()
                task = await api.claim_next(project_id)
                continue
            tally.submitted[bot.email] = tally.submitted.get(bot.email, 0) + 1


async def _give_back(api: AsyncClient, task: Task) -> None:
    # It expires by itself; skipping only makes it available to others sooner.
    with contextlib.suppress(ApiError):
        await api.skip(task.assignment_id)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class _Budget:
    """At most ``limit`` submissions in all (None: no limit), shared by the bots of one run."""

    def __init__(self, limit: int | None) -> None:
        self.limit, self.used = limit, 0

    def take(self) -> bool:
        if self.limit is not None and self.used >= self.limit:
            return False
        self.used += 1
        return True

    def refund(self) -> None:
        self.used -= 1

    def spent(self) -> bool:
        return self.limit is not None and self.used >= self.limit


def dismiss_bots(admin: Client, bots: Sequence[Bot]) -> None:
    """Revoke the tokens enlist_bots gave (the accounts stay, with their work and quality)."""
    for bot in bots:
        with contextlib.suppress(ApiError):
            admin.revoke_token(bot.token_id)


def project_categories(admin: Client, project_id: int) -> dict[str, str]:
    """label -> key of the project's harm taxonomy (the judges name categories by label)."""
    project = admin.get_project(project_id)
    return {str(c.get("label", c["key"])): str(c["key"]) for c in project.harm_taxonomy}


async def run_bots(
    url: str,
    bots: Sequence[Bot],
    project_id: int,
    categories: dict[str, str],
    *,
    pairs: int | None = None,
    seed: int = 0,
    stop: asyncio.Event | None = None,
    idle_s: float = 1.0,
) -> Tally:
    """Let the bots annotate the project concurrently until ``pairs`` answers were submitted in
    all, or nothing is left for any of them. With ``stop``, a bot that finds nothing waits
    (``idle_s`` between tries) until ``stop`` is set, so pairs added later are annotated too."""
    tally, budget = Tally(), _Budget(pairs)
    work = [
        _work(url, bot, project_id, categories, budget, tally, seed=seed, stop=stop, idle_s=idle_s)
        for bot in bots
    ]
    results = await asyncio.gather(*work, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        logger.error("a bot stopped: %s", failure)
    if failures and not tally.total:
        raise failures[0]
    return tally
