"""Schema pieces shared by several resources."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ErrorRead(BaseModel):
    """The one error shape of the API."""

    detail: str
    code: str


class StrictModel(BaseModel):
    """Request bodies reject unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorRead, "description": "not logged in, or the API token is invalid"},
    403: {"model": ErrorRead, "description": "the role or token scope does not allow this, or CSRF failed"},
    404: {"model": ErrorRead, "description": "not found (also what objects you may not see look like)"},
}
