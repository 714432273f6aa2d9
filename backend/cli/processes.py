"""Long-running processes: `serve` (the web app and API) and `worker` (Celery)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from backend.cli.base import fail, main
from backend.config import get_settings
from backend.domain import task_names


def invalid_settings() -> str | None:
    """Why the environment's settings are invalid (one line per field), or None."""
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        return f"invalid settings: {fields}"
    return None


@main.command(help="Serve the web app and the REST API with uvicorn.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="worker processes; on Linux each accepts on its own SO_REUSEPORT socket, so the kernel "
    "spreads connections evenly",
)
@click.option("--reload", is_flag=True, help="restart on code changes (development; one worker)")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="log every request")
def serve(host: str, port: int, workers: int, reload: bool, log_level: str, access_log: bool) -> None:
    import logging

    import uvicorn

    from backend.serving import PortInUse, ServeOptions, balances_connections, serve_balanced

    if workers > 1 and reload:
        fail("--reload runs one worker; drop --workers or --reload")
    settings_error = invalid_settings()
    if settings_error:
        fail(settings_error)
    if workers > 1 and balances_connections():
        logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(message)s")
        options = ServeOptions(host=host, port=port, log_level=log_level, access_log=access_log)
        try:
            sys.exit(serve_balanced(options, workers))
        except PortInUse as exc:
            fail(str(exc))
    uvicorn.run(
        "backend.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        proxy_headers=True,
        log_level=log_level,
        access_log=access_log,
    )


@main.command(help="Run a Celery worker. `--queues gpu` gets concurrency 1, the training setting.")
@click.option("--queues", default=f"{task_names.DEFAULT_QUEUE},{task_names.GPU_QUEUE}", show_default=True)
@click.option("--concurrency", default=None, type=int, help="processes (default: 1 for gpu, 2 otherwise)")
@click.option("--beat", is_flag=True, help="also run the periodic scheduler (one per deployment)")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(queues: str, concurrency: int | None, beat: bool, loglevel: str) -> None:
    settings_error = invalid_settings()
    if settings_error:
        fail(settings_error)
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if concurrency is None:
        # A GPU worker runs one training job at a time; training runs in a subprocess anyway.
        concurrency = 1 if task_names.GPU_QUEUE in names else 2
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-Q",
        ",".join(names),
        "-c",
        str(concurrency),
        "--prefetch-multiplier",
        "1",
        "-O",
        "fair",
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        args += ["--beat", "--schedule", str(Path(get_settings().artifacts_dir) / "celerybeat-schedule")]
        Path(get_settings().artifacts_dir).mkdir(parents=True, exist_ok=True)
    os.execv(sys.executable, args)
