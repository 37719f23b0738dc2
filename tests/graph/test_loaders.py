"""graph.loaders: one statement per loader per batch, whatever the number of rows; reads retried on demand;
`then` hands graphql-core a future of the converted result."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.images import add_image
from db.states import Status
from db.transitions import transition
from graph.loaders import Loaders, then
from tests.db.rows import new_generation, new_user
from tests.sql import recorded_statements

T = TypeVar("T")


async def _rows(session_factory: async_sessionmaker[AsyncSession]) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """(five generations, QUEUED but the last which is CANCELLED, two images on each of the first two;
    their owners)."""
    gids, owners = [], []
    async with session_factory() as session:
        for n in range(5):
            owner = await new_user(session)
            change, _ = await new_generation(session, owner, prompt=f"p{n}")
            gids.append(change.generation.id)
            owners.append(owner.id)
        for gid in gids[:2]:
            for index in range(2):
                await add_image(
                    session, generation_id=gid, index=index, content_hash=f"{index:064x}", mime="image/png",
                    width=8, height=8, seed=1, size_bytes=1, node_id="9",
                )  # fmt: skip
        await transition(session, generation_id=gids[-1], to=Status.CANCELLED)
        await session.commit()
    return gids, owners


async def test_each_loader_reads_a_batch_in_one_statement(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    gids, owners = await _rows(session_factory)
    missing = uuid.uuid4()
    loaders = Loaders.create(session_factory)
    with recorded_statements(engine) as statements:
        images, users, positions = await asyncio.gather(
            asyncio.gather(*(loaders.images.load(g) for g in [*gids, missing])),
            asyncio.gather(*(loaders.users.load(o) for o in [*owners, missing])),
            asyncio.gather(*(loaders.queue_positions.load(g) for g in [*gids, missing])),
        )
    # (a connection the pool opens meanwhile sends set-up statements of its own: not counted)
    per_table = {t: [s for s in statements if f"FROM {t}" in s] for t in ("images", "users", "generations")}
    assert {t: len(found) for t, found in per_table.items()} == {"images": 1, "users": 1, "generations": 1}, statements
    assert [[i.index for i in found] for found in images] == [[0, 1], [0, 1], [], [], [], []]
    assert [u.id if u else None for u in users] == [*owners, None]
    assert positions[-2:] == [None, None], "a CANCELLED generation and an unknown id have no place"
    queued = positions[:4]
    assert all(isinstance(p, int) for p in queued) and queued == sorted(queued), queued
    assert len(set(queued)) == 4


async def test_after_retry_reads_every_batch_goes_through_the_retry(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    gids, owners = await _rows(session_factory)
    loaders = Loaders.create(session_factory)
    images = loaders.images  # a loader made before retry_reads is retried too
    assert len(await images.load(gids[0])) == 2
    tried: list[int] = []

    async def retry(read: Callable[[], Awaitable[T]]) -> T:
        tried.append(1)
        return await read()

    loaders.retry_reads(retry)
    assert len(await images.load(gids[1])) == 2
    assert (await loaders.users.load(owners[0])) is not None
    assert len(tried) == 2


async def test_then_converts_passes_errors_and_cancels() -> None:
    loop = asyncio.get_running_loop()

    source: asyncio.Future[int] = loop.create_future()
    converted = then(source, lambda n: n * 2)
    source.set_result(21)
    assert await converted == 42

    async def boom() -> int:
        raise LookupError("gone")

    with pytest.raises(LookupError, match="gone"):
        await then(boom(), lambda n: n)

    pending: asyncio.Future[Any] = loop.create_future()
    out = then(pending, lambda v: v)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await out
