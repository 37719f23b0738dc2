"""graph.lastseq: one read of a generation's last sequence number shared by its quiet subscribers.

(That 50 concurrent checks make one read is in tests/graph/test_subscriptions.py.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.states import Status
from db.transitions import transition
from graph.lastseq import LastSeqReads
from tests.db.rows import new_generation, new_user


async def _generation(sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    async with sessions() as session:
        owner = await new_user(session)
        change, _ = await new_generation(session, owner)
    return change.generation.id


async def test_an_answer_is_shared_until_it_is_ttl_old(session_factory: async_sessionmaker[AsyncSession]) -> None:
    gid = await _generation(session_factory)
    reads = LastSeqReads(session_factory, ttl_s=0.3)
    assert await reads.get(gid) == 1
    async with session_factory() as session:
        await transition(session, generation_id=gid, to=Status.CANCELLED)  # seq 2
        await session.commit()
    assert await reads.get(gid) == 1, "younger than ttl_s: the shared answer"
    assert reads.reads == 1
    await asyncio.sleep(0.35)  # the answer is older than ttl_s now
    assert await reads.get(gid) == 2
    assert reads.reads == 2


async def test_a_waiter_going_away_leaves_the_read_to_the_others(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    gid = await _generation(session_factory)
    entered, gate = asyncio.Event(), asyncio.Event()

    @asynccontextmanager
    async def gated() -> AsyncIterator[AsyncSession]:
        entered.set()
        await gate.wait()
        async with session_factory() as session:
            yield session

    reads = LastSeqReads(gated, ttl_s=60)  # type: ignore[arg-type]
    leaving = asyncio.create_task(reads.get(gid))
    staying = asyncio.create_task(reads.get(gid))
    await asyncio.wait_for(entered.wait(), 5)  # the shared read has started and waits at the gate
    leaving.cancel()  # an unsubscribe
    with pytest.raises(asyncio.CancelledError):
        await leaving
    gate.set()
    assert await asyncio.wait_for(staying, 5) == 1
    assert reads.reads == 1


async def test_a_failed_read_is_not_served_again(session_factory: async_sessionmaker[AsyncSession]) -> None:
    gid = await _generation(session_factory)
    failures = [ConnectionRefusedError("the database is away")]

    @asynccontextmanager
    async def flaky() -> AsyncIterator[AsyncSession]:
        if failures:
            raise failures.pop()
        async with session_factory() as session:
            yield session

    reads = LastSeqReads(flaky, ttl_s=60)  # type: ignore[arg-type]
    with pytest.raises(ConnectionRefusedError):
        await reads.get(gid)
    assert await reads.get(gid) == 1, "the next caller (a retry) reads again"
    assert reads.reads == 2


async def test_answers_kept_are_bounded() -> None:
    """Subscribers of many generations come and go: expired answers are let go once 1,024 are kept."""

    class NoRow:
        def scalar_one_or_none(self) -> None:
            return None

    class Session:
        async def execute(self, statement: object) -> NoRow:
            return NoRow()

    @asynccontextmanager
    async def sessions() -> AsyncIterator[Session]:  # no round trip: only the bookkeeping is under test
        yield Session()

    reads = LastSeqReads(sessions, ttl_s=0.0)  # type: ignore[arg-type]
    for _ in range(3000):
        assert await reads.get(uuid.uuid4()) is None
    assert reads.reads == 3000
    assert len(reads._reads) <= 1024  # the module's own bookkeeping: nothing else shows its size
