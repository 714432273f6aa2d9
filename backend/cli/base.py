"""The `saferlhf` command group and the one way its commands fail."""

from __future__ import annotations

import sys

import click


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group(help="Safe RLHF platform: decoupled preference annotation and Safe RLHF training rounds.")
def main() -> None:
    pass
