"""Password hashing with argon2id (docs/design/reliability.md C1: m >= 19 MiB, t >= 2, p >= 1)."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backend.domain.errors import InvalidInput

MIN_PASSWORD_LENGTH = 10


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"passwords need at least {MIN_PASSWORD_LENGTH} characters", code="weak_password")
    return hasher().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return hasher().verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return hasher().check_needs_rehash(stored_hash)


# Verified against when the account does not exist, so that unknown-user and wrong-password
# logins cost the same time and do not reveal which accounts exist.
_DUMMY_HASH: str | None = None


def burn_equal_time(password: str) -> None:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hasher().hash("not-a-real-password-0000")
    verify_password(_DUMMY_HASH, password)
