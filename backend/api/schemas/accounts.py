"""Users and API tokens."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from backend.api.schemas.common import StrictModel
from backend.domain.enums import TokenScope, UserRole


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    display_name: str
    role: UserRole
    is_active: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None


class UserCreate(StrictModel):
    email: str = Field(max_length=320)
    role: UserRole = UserRole.annotator
    display_name: str | None = Field(None, max_length=200)
    password: str | None = Field(
        None, min_length=10, max_length=1000, description="omit to have one generated and returned once"
    )


class UserCreated(UserRead):
    generated_password: str | None = Field(None, description="shown once when the server generated it")


class UserUpdate(StrictModel):
    display_name: str | None = Field(None, max_length=200)
    role: UserRole | None = None
    is_active: bool | None = None
    password: str | None = Field(None, min_length=10, max_length=1000, description="ends the user's sessions")


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    prefix: str = Field(description="the token's first characters, to tell tokens apart; not secret")
    scopes: list[TokenScope]
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[TokenScope] = Field(min_length=1, description="at most what the owner's role allows")
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class TokenCreated(TokenRead):
    token: str = Field(description="the secret; shown only in this response, store it now")
