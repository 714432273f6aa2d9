"""User-facing errors (torch-free). The CLI prints these as one clear line, never a traceback."""

from __future__ import annotations

MAX_MESSAGE = 500  # a failed event's message stays one readable line even for a huge exception text


class UserError(Exception):
    """A mistake the user can fix: a bad option, a missing file, malformed data."""


class ConfigError(UserError):
    """An unknown, missing or invalid configuration key or value."""


class DataError(UserError):
    """A data file that is missing, unreadable or not in the expected schema."""


def one_line(exc: BaseException) -> str:
    """The one-line message the CLI prints for ``exc`` (and a ``failed`` event records).

    An ``OSError`` reads ``"<strerror>: <filename>"``; any other exception its first non-empty line,
    or its class name when it has no text.
    """
    if isinstance(exc, OSError) and (exc.strerror or exc.filename):
        text = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    else:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
