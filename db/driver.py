"""The hottest single statements, compiled once by SQLAlchemy and run on the asyncpg connection itself.

SQLAlchemy's execution of a statement (session, compiled-cache lookup, execution context, parameter and
row processing) costs this 2-vCPU machine about 1.5 ms of CPU beyond asyncpg's: 2.1 against 0.6 ms for
the INSERT of a generation, most of what the mutation → POST /prompt path spent in the database, once
in the API's INSERT and once in the worker's claim. A `Prepared` statement keeps SQLAlchemy's SQL and
its types' parameter and result processing, and runs them on a pooled connection's driver connection.

Only in autocommit sessions (`db.engine.single_statement`), where every statement stands alone anyway;
in any other session the statement runs through the session as usual, inside its transaction.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Float, Numeric, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.util.concurrency import greenlet_spawn

__all__ = ["Prepared", "fetch"]

_FLOAT8 = 701  # PostgreSQL's type oid of double precision, the type of Float columns

_Processor = Callable[[Any], Any] | None


class Prepared:
    """A SELECT (CTEs and all) to be compiled once per dialect; its rows are keyed by column key."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled] = weakref.WeakKeyDictionary()

    def compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect)
        if compiled is None:
            compiled = self._compiled[dialect] = _Compiled(self.statement, dialect)
        return compiled


class _Compiled:
    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is None or any(bind.expanding for bind in compiled.binds.values()):
            raise ValueError("a prepared statement needs positional, non-expanding parameters")
        self.sql = compiled.string
        self._compiled = compiled
        self._names = tuple(compiled.positiontup)
        self._bind: tuple[_Processor, ...] = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self._names
        )
        columns = list(statement.selected_columns)
        keys = [column.key for column in columns]
        if None in keys or len(set(keys)) != len(keys):
            raise ValueError("a prepared statement's columns need distinct keys")
        self._keys: tuple[str, ...] = tuple(str(key) for key in keys)
        self._result = tuple(_result_processor(column.type, dialect) for column in columns)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = self._compiled.construct_params(dict(params))
        out = []
        for name, bind in zip(self._names, self._bind, strict=True):
            value = values[name]
            out.append(value if bind is None else bind(value))
        return out

    def rows(self, records: list[Any]) -> list[dict[str, Any]]:
        rows = []
        for record in records:
            row: dict[str, Any] = {}
            for key, result, value in zip(self._keys, self._result, record, strict=True):
                row[key] = value if result is None else result(value)
            rows.append(row)
        return rows


def _result_processor(type_: Any, dialect: Dialect) -> _Processor:
    impl = type_.dialect_impl(dialect)
    if isinstance(impl, Numeric) and not isinstance(impl, Float):
        raise ValueError("numeric columns are not prepared here")  # their processing depends on the PG type
    processor: _Processor = impl.result_processor(dialect, _FLOAT8 if isinstance(impl, Float) else None)
    return processor


async def fetch(session: AsyncSession, prepared: Prepared, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The statement's rows as mappings of its column keys: on the driver in an autocommit session."""
    bind = session.bind
    if not isinstance(bind, AsyncEngine) or bind.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        result = await session.execute(prepared.statement, dict(params))
        return [{str(key): value for key, value in row._mapping.items()} for row in result]
    compiled = prepared.compiled(bind.dialect)
    arguments = compiled.arguments(params)
    pooled = await bind.raw_connection()
    driver = pooled.driver_connection
    assert driver is not None  # checked out: connected
    try:
        records = await driver.fetch(compiled.sql, *arguments)
    finally:
        # Back into the pool where SQLAlchemy can await the driver, as AsyncEngine checks out: a return
        # beyond the pool's size closes the connection, and an invalidation closes it too.
        if driver.is_closed():
            await greenlet_spawn(pooled.invalidate)  # lost with the statement in flight: not back into the pool
        else:
            await greenlet_spawn(pooled.close)
    return compiled.rows(records)
