"""Domain errors raised by services. The API and the web pages map each to one status code."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: a message safe to show to the user and a stable machine-readable code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class InvalidInput(DomainError):
    status_code = 422
    code = "invalid_input"


class NotAuthenticated(DomainError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class TooManyRequests(DomainError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "service_unavailable"
