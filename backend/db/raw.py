"""The statements run on every annotated pair go straight to psycopg, as prepared statements.

SQLAlchemy's execution layer (statement cache lookup, parameter processing, result metadata,
Row objects) costs more CPU per call than Postgres needs to run these small statements, and one
submit-and-next issues several of them. `driver()` hands out the psycopg connection under a
Session's current transaction, so `session.commit()` and `session.rollback()` still end the
transaction, and `fetch_one()` asks psycopg to prepare the statement on its first use: Postgres
then parses it once per connection instead of on every call, and plans it once too (a generic
plan) once the first executions have shown that the generic plan is as good as custom ones.

Rules for callers:

* Parameters use psycopg's `%(name)s` style; rows are plain tuples.
* Errors are psycopg's own (`psycopg.errors.UniqueViolation`, ...), not SQLAlchemy's wrappers.
  A broken connection still invalidates the pool: the rollback or close that follows the error
  goes through SQLAlchemy, which recognises the disconnect there.
* psycopg deallocates every prepared statement of a connection when a ROLLBACK runs on it (the
  rollback might have undone DDL they depend on), so the next requests on that connection pay
  for parsing and planning again. Transactions that wrote nothing end with `end_read_only()`,
  a COMMIT, which is equivalent for them and keeps the statements.
"""

from __future__ import annotations

from typing import Any, LiteralString, cast

import psycopg
from sqlalchemy.orm import Session

Params = dict[str, Any]


def driver(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection of the session's transaction (begun if it was not yet)."""
    return cast(psycopg.Connection[Any], session.connection().connection.driver_connection)


def fetch_one(conn: psycopg.Connection[Any], query: LiteralString, params: Params) -> tuple[Any, ...] | None:
    row = conn.execute(query, params, prepare=True).fetchone()
    return cast(tuple[Any, ...] | None, row)


def end_read_only(session: Session) -> None:
    """End a transaction that changed nothing. A COMMIT, not a ROLLBACK (see the module doc)."""
    session.commit()
