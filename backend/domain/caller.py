"""Who is acting, as far as the annotation queue needs to know: an id and a role.

The queue services take this instead of the ORM `User`, so the API's hot path can call them with
what the token lookup returned, without loading the user row as an ORM object. A `User`
satisfies it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from backend.domain.enums import UserRole


class Caller(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def role(self) -> UserRole: ...


@dataclass(frozen=True)
class CallerRef:
    id: int
    role: UserRole
