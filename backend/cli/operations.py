"""Operations: `migrate`, `check` (database and broker reachable), `ping` (a worker answers)."""

from __future__ import annotations

import sys

import click

from backend.cli.base import fail, main
from backend.config import REPO_ROOT, get_settings
from backend.domain import task_names


@main.command(help="Apply database migrations (alembic upgrade head).")
def migrate() -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    command.upgrade(cfg, "head")
    click.echo("database is at the latest migration")


@main.command(help="Check that the database and the broker are reachable.")
def check() -> None:
    from backend.db.session import get_engine
    from backend.services.health import check_broker, check_database

    db = check_database(get_engine())
    broker = check_broker(get_settings())
    click.echo(f"database: {'ok' if db.ok else 'DOWN'} ({db.detail})")
    click.echo(f"broker:   {'ok' if broker.ok else 'DOWN'} ({broker.detail})")
    if not (db.ok and broker.ok):
        sys.exit(1)


@main.command(help="Send a ping task through the broker and wait for a worker to answer.")
@click.option("--timeout", default=20.0, show_default=True)
def ping(timeout: float) -> None:
    from backend.queue import client

    result = client().send_task(task_names.PING, queue=task_names.DEFAULT_QUEUE)
    try:
        answer = result.get(timeout=timeout)
    except Exception as exc:
        fail(
            f"no worker answered within {timeout:.0f}s ({type(exc).__name__}); is `saferlhf worker` running?"
        )
    click.echo(f"pong from {answer['worker_id']}")
