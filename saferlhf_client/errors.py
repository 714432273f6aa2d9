"""Errors raised by the client: one class per kind of answer the server can give."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """The server refused a request; `code` is its stable machine-readable reason."""

    def __init__(self, status: int, code: str, detail: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body or {}


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """409: e.g. lease_expired (the pair went to someone else), overlap_reached, already_submitted."""


class InvalidInput(ApiError):
    """422: invalid labels, an Idempotency-Key reused with another body, or a rejected import."""


class AuthError(ApiError):
    """401 or 403."""


def error_for(status: int, body: dict[str, Any]) -> ApiError:
    code = str(body.get("code", "error"))
    detail = str(body.get("detail", "request failed"))
    kind: type[ApiError] = ApiError
    if status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status == 422:
        kind = InvalidInput
    elif status in (401, 403):
        kind = AuthError
    return kind(status, code, detail, body)
