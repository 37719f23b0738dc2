"""A subscription's reads wait out a database outage (retried with backoff) instead of ending it with an error."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.proxy import CuttableProxy
from db import generation_reads
from db.reachability import database_unreachable
from db.transitions import create_generation
from db.users import ensure_user
from graph.lastseq import LastSeqReads
from graph.subscriptions import patiently


async def _generation(sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    async with sessions() as session:
        owner = await ensure_user(session, name=f"outage-{uuid.uuid4().hex[:8]}")
        change, _ = await create_generation(
            session, owner_id=owner.id, template="txt2img", params={"prompt": "p"}, prompt="p", seed=1
        )
        await session.commit()
    return change.generation.id


async def test_reads_wait_for_the_database_to_come_back(
    proxied: tuple[CuttableProxy, async_sessionmaker[AsyncSession]],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    proxy, sessions = proxied
    gid, other = await _generation(session_factory), await _generation(session_factory)
    last_seqs = LastSeqReads(sessions, ttl_s=60.0)  # a read is shared for a minute
    assert await last_seqs.get(gid) == 1  # connections are pooled

    tries = 0

    async def last_seq() -> int | None:
        nonlocal tries
        tries += 1
        async with sessions() as session:
            return await generation_reads.last_seq(session, generation_id=gid)

    await proxy.cut()
    with pytest.raises(Exception) as failed:  # noqa: PT011 (whatever the driver raises)
        await last_seq()
    assert database_unreachable(failed.value)
    with pytest.raises(Exception) as failed:  # noqa: PT011
        await last_seqs.get(other)
    assert database_unreachable(failed.value)

    tried, shared_reads = tries, last_seqs.reads
    read = asyncio.ensure_future(patiently(last_seq))
    shared = asyncio.ensure_future(patiently(lambda: last_seqs.get(other)))
    async with asyncio.timeout(10):  # each has failed again and been tried again since, twice over
        while True:
            if tries >= tried + 3 and last_seqs.reads >= shared_reads + 3:
                break
            await asyncio.sleep(0.01)
    assert not read.done() and not shared.done(), "the outage goes on: they wait, and no error ends them"
    await proxy.restore()
    assert await asyncio.wait_for(read, 30) == 1
    assert await asyncio.wait_for(shared, 30) == 1, "a failed shared read is not served again"


async def test_other_errors_are_not_retried(session_factory: async_sessionmaker[AsyncSession]) -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await patiently(broken)
    assert calls == 1
