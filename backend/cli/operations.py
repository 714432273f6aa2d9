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


def shown(url: str) -> str:
    """A service URL as it may be printed: with its password masked."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: show only its scheme, the rest may hold a password
        return url.split("://", 1)[0] + "://..."


def where(variable: str, url: str) -> str:
    """The hint that makes an unreachable service fixable: which setting points where."""
    return f"is it running, and is {variable} right? {variable}={shown(url)}"


@main.command(help="Check that the database and the broker are reachable.")
def check() -> None:
    from backend.db.session import get_engine
    from backend.services.health import check_broker, check_database

    settings = get_settings()
    db = check_database(get_engine())
    broker = check_broker(settings)
    db_hint = "" if db.ok else f"; {where('DATABASE_URL', settings.database_url)}"
    broker_hint = "" if broker.ok else f"; {where('REDIS_URL', settings.redis_url)}"
    click.echo(f"database: {'ok' if db.ok else 'DOWN'} ({db.detail}){db_hint}")
    click.echo(f"broker:   {'ok' if broker.ok else 'DOWN'} ({broker.detail}){broker_hint}")
    if not (db.ok and broker.ok):
        sys.exit(1)


@main.command(help="Send a ping task through the broker and wait for a worker to answer.")
@click.option("--timeout", default=20.0, show_default=True)
def ping(timeout: float) -> None:
    from backend.queue import client
    from backend.services.health import check_broker

    settings = get_settings()
    # Celery retries an unreachable broker for about 20 s and then raises from deep inside its
    # result backend; asking the broker first gives the one line that says what to fix.
    broker = check_broker(settings)
    if not broker.ok:
        fail(f"{broker.detail}; {where('REDIS_URL', settings.redis_url)}")
    try:
        result = client().send_task(task_names.PING, queue=task_names.DEFAULT_QUEUE)
        answer = result.get(timeout=timeout)
    except Exception as exc:
        # A broker that went away after the check above lands here too.
        fail(
            f"no worker answered within {timeout:.0f}s ({type(exc).__name__}); is `saferlhf worker` running?"
        )
    click.echo(f"pong from {answer['worker_id']}")
