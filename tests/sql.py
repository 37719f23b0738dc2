"""Counting the SQL statements an engine runs, whichever way they go."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@contextmanager
def recorded_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL of every statement run on the engine's pool meanwhile: through SQLAlchemy (its cursor
    events) or straight on the driver (asyncpg's query log of each connection checked out meanwhile)."""
    statements: list[str] = []

    def executed(*args: Any) -> None:
        statements.append(args[2])

    def logged(record: Any) -> None:
        statements.append(record.query)

    def checked_out(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(logged)

    def checked_in(dbapi_connection: Any, *_: Any) -> None:
        if dbapi_connection is not None:
            dbapi_connection.driver_connection.remove_query_logger(logged)

    sync_engine, pool = engine.sync_engine, engine.sync_engine.pool
    event.listen(sync_engine, "before_cursor_execute", executed)
    event.listen(pool, "checkout", checked_out)
    event.listen(pool, "checkin", checked_in)
    try:
        yield statements
    finally:
        event.remove(sync_engine, "before_cursor_execute", executed)
        event.remove(pool, "checkout", checked_out)
        event.remove(pool, "checkin", checked_in)
