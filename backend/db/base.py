"""Declarative base with a constraint naming convention, so Alembic migrations stay deterministic."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import DateTime, Enum, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {dt.datetime: DateTime(timezone=True)}


def pg_enum(enum_cls: type[enum.Enum], name: str) -> Enum:
    """A native Postgres enum storing the members' values (lower-case strings)."""
    return Enum(enum_cls, name=name, values_callable=lambda members: [m.value for m in members])


def created_at_column() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
