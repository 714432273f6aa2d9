"""``python -m simulate --project P --bots K [--noise 0.1] [--position-bias 0.05] [--spammers 0.1]
[--pairs N | --until-empty | --follow] [--seed S]``: K bot annotators work a project's queue.

The admin token (``--token`` or ``SAFERLHF_TOKEN``) creates the bots' accounts and tokens; the
bots then claim and submit with their own tokens. Exit status: 0 done, 2 a setting or the
server refused (one line on stderr), 1 the server could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

import httpx

from saferlhf_client import ApiError, Client
from simulate.bots import Bot, CrowdSettings, Tally, dismiss_bots, enlist_bots, project_categories, run_bots


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="saferlhf simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("SAFERLHF_URL", "http://127.0.0.1:8000"))
    p.add_argument("--token", default=None, help="an admin API token (default: $SAFERLHF_TOKEN)")
    p.add_argument("--project", type=int, required=True, help="project id")
    p.add_argument("--bots", type=_positive, default=5, help="number of bot annotators (default 5)")
    p.add_argument("--noise", type=_rate, default=0.1, help="per-axis preference flip rate (0.1)")
    p.add_argument("--position-bias", type=_rate, default=0.05, help="rate of picking the left one (0.05)")
    p.add_argument("--safety-error", type=_rate, default=0.02, help="safe/unsafe label flip rate (0.02)")
    p.add_argument("--spammers", type=_rate, default=0.0, help="share of bots answering at random (0)")
    p.add_argument(
        "--ties",
        choices=("random", "equal"),
        default="random",
        help="when the judges score both the same: pick a side at random (default, as PKU-SafeRLHF's "
        "annotators had to) or answer 'equal'",
    )
    p.add_argument("--seed", type=int, default=0)
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--pairs", type=_positive, default=None, help="stop after N answers in all")
    stop.add_argument("--until-empty", action="store_true", help="stop when nothing is left (default)")
    stop.add_argument("--follow", action="store_true", help="keep waiting for new pairs until Ctrl-C")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    token = args.token or os.environ.get("SAFERLHF_TOKEN")
    if not token:
        print("error: give an admin API token with --token or SAFERLHF_TOKEN", file=sys.stderr)
        return 2
    crowd = CrowdSettings(
        bots=args.bots,
        noise=args.noise,
        position_bias=args.position_bias,
        safety_error=args.safety_error,
        spammers=args.spammers,
        ties=args.ties,
        seed=args.seed,
    )
    try:
        with Client(args.url, token) as admin:
            bots = enlist_bots(admin, args.project, crowd.profiles())
            try:
                categories = project_categories(admin, args.project)
                tally = asyncio.run(_run(args, bots, categories))
            finally:
                dismiss_bots(admin, bots)
    except ApiError as exc:
        print(f"error: the server refused: {exc.detail} ({exc.code})", file=sys.stderr)
        return 2
    except httpx.TransportError as exc:
        print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    summary = {"submitted": tally.total, "conflicts": tally.conflicts, "per_bot": tally.submitted}
    print(json.dumps(summary, sort_keys=True))
    return 0


async def _run(args: argparse.Namespace, bots: list[Bot], categories: dict[str, str]) -> Tally:
    stop = None
    if args.follow:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return await run_bots(
        args.url, bots, args.project, categories, pairs=args.pairs, seed=args.seed, stop=stop
    )
