"""The pool survives PostgreSQL dropping its connections, without a pre-ping round trip per checkout."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.engine import create_engine, create_session_factory, single_statement
from settings import Settings


@pytest.fixture
async def own_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, pool_size=3)
    yield engine
    await engine.dispose()


async def _terminate(settings: Settings, backends: dict[int, Any]) -> None:
    """What a PostgreSQL restart or an administrator does to the pool's backends (pid → driver
    connection); returns once each driver connection has seen the server close it."""
    conn = await asyncpg.connect(str(settings.database_url))
    try:
        terminated = await conn.fetch("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(backends))
        assert all(row[0] for row in terminated)
    finally:
        await conn.close()
    async with asyncio.timeout(10):
        while True:
            if all(driver.is_closed() for driver in backends.values()):
                return
            await asyncio.sleep(0.01)


async def _backend(session: AsyncSession) -> dict[int, Any]:
    """The session's backend pid and its driver connection."""
    pid = int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    raw = await (await session.connection()).get_raw_connection()
    return {pid: raw.driver_connection}


async def _backends(sessions: async_sessionmaker[AsyncSession], count: int) -> dict[int, Any]:
    """Check out `count` connections at once, so the pool holds that many, and return their backends."""
    held = [sessions() for _ in range(count)]
    try:
        return {pid: driver for s in held for pid, driver in (await _backend(s)).items()}
    finally:
        for s in held:
            await s.close()


def _count_statements(engine: AsyncEngine) -> list[str]:
    seen: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


async def test_idle_connections_killed_by_the_server_are_replaced_without_an_error(
    own_engine: AsyncEngine, settings: Settings
) -> None:
    sessions = create_session_factory(own_engine)
    old = await _backends(sessions, 3)
    await _terminate(settings, old)

    new = await _backends(sessions, 3)  # every checkout succeeds: no request sees the dead ones
    assert not new.keys() & old.keys()
    async with sessions() as session:
        assert (await session.execute(select(1))).scalar_one() == 1


async def test_a_connection_lost_mid_transaction_fails_only_that_transaction(
    own_engine: AsyncEngine, settings: Settings
) -> None:
    sessions = create_session_factory(own_engine)
    async with sessions() as session:
        backend = await _backend(session)
        await _terminate(settings, backend)
        with pytest.raises(DBAPIError) as failure:
            await session.execute(select(1))
        assert failure.value.connection_invalidated  # a clear disconnect, and the pool knows it

    async with sessions() as session:
        assert (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one() not in backend


async def test_no_round_trip_is_spent_on_checkout(own_engine: AsyncEngine) -> None:
    sessions = create_session_factory(own_engine)
    await _backends(sessions, 1)  # connected (the dialect's first-connect queries are done)
    seen = _count_statements(own_engine)
    async with single_statement(sessions) as session:
        assert (await session.execute(select(1))).scalar_one() == 1
    assert seen == ["SELECT 1"]


async def test_single_statement_sessions_commit_each_statement(own_engine: AsyncEngine) -> None:
    sessions = create_session_factory(own_engine)
    table = f"engine_autocommit_probe_{uuid.uuid4().hex[:8]}"
    async with single_statement(sessions) as session:
        await session.execute(text(f"CREATE TABLE {table} (x int)"))
        await session.execute(text(f"INSERT INTO {table} VALUES (1)"))
        await session.rollback()  # nothing to roll back: the insert is committed already
        assert (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 1
        await session.commit()  # the session lets its connection go; the next one is autocommit too
        await session.execute(text(f"INSERT INTO {table} VALUES (2)"))
        await session.rollback()
        assert (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 2
        await session.execute(text(f"DROP TABLE {table}"))
    async with sessions() as session:  # the connection went back to the pool transactional again
        await session.execute(select(1))
        assert (await session.connection()).in_transaction()
        assert (await session.execute(text("SHOW transaction_isolation"))).scalar_one() == "read committed"
