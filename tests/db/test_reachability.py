"""db.reachability: the readiness ping, and telling an unreachable database from a failure of the work."""

from __future__ import annotations

import errno

import asyncpg
import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.proxy import CuttableProxy
from db.reachability import database_unreachable, ping
from settings import Settings


async def _raised(sessions: async_sessionmaker[AsyncSession], sql: str = "select 1") -> BaseException:
    async with sessions() as session:
        with pytest.raises(Exception) as raised:  # noqa: PT011 (whatever the driver raises is the point)
            await session.execute(text(sql))
    return raised.value


async def test_ping_answers_while_the_database_does_and_a_refused_connection_is_unreachable(
    proxied: tuple[CuttableProxy, async_sessionmaker[AsyncSession]],
) -> None:
    proxy, sessions = proxied
    async with sessions() as session:
        await ping(session)
    await proxy.cut()
    async with sessions() as session:
        with pytest.raises(Exception) as refused:  # noqa: PT011
            await ping(session)
    assert database_unreachable(refused.value), repr(refused.value)
    await proxy.restore()
    async with sessions() as session:
        await ping(session)


async def test_a_connection_lost_mid_statement_is_unreachable(
    proxied: tuple[CuttableProxy, async_sessionmaker[AsyncSession]], settings: Settings
) -> None:
    _, sessions = proxied
    async with sessions() as session:
        pid = (await session.execute(text("select pg_backend_pid()"))).scalar_one()
        admin = await asyncpg.connect(str(settings.database_url))
        try:
            await admin.execute("select pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        with pytest.raises(exc.DBAPIError) as lost:
            await session.execute(text("select 1"))
    assert lost.value.connection_invalidated
    assert database_unreachable(lost.value)


async def test_a_bad_statement_is_not_an_outage(session_factory: async_sessionmaker[AsyncSession]) -> None:
    error = await _raised(session_factory, "select * from no_such_table_at_all")
    assert isinstance(error, exc.DBAPIError) and not error.connection_invalidated
    assert not database_unreachable(error)
    error = await _raised(session_factory, "select 1/0")
    assert not database_unreachable(error)


def test_an_exhausted_pool_is_unreachable_but_our_own_os_errors_are_not() -> None:
    assert database_unreachable(exc.TimeoutError("QueuePool limit of size 5 overflow 0 reached"))
    # Raised here, not from the driver: a full disk writing an image, a timeout of our own.
    assert not database_unreachable(OSError(errno.ENOSPC, "No space left on device"))
    assert not database_unreachable(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert not database_unreachable(TimeoutError())
    assert not database_unreachable(ValueError("a bug"))
