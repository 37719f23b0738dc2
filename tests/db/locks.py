"""Waiting on PostgreSQL's row locks, so a test sees one transaction wait for another instead of guessing."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

_BLOCKED = text("select count(*) from pg_stat_activity where :holder = any(pg_blocking_pids(pid))")


async def blocked_by(session_factory: async_sessionmaker[AsyncSession], holder: int, *, within_s: float = 10.0) -> None:
    """Wait until a statement waits for a lock that backend `holder` (its `pg_backend_pid()`) holds."""
    async with asyncio.timeout(within_s), session_factory() as observer:
        while not (await observer.execute(_BLOCKED, {"holder": holder})).scalar_one():
            await observer.rollback()  # a fresh snapshot of pg_stat_activity for the next look
            await asyncio.sleep(0.01)
