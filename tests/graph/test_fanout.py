"""The in-process event hub (graph/fanout.py) against real Redis: fan-out, QUIET, closing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from db.events import EventKind
from graph.fanout import QUIET, EventHub
from jobs.bus import BusEvent, publish
from jobs.keys import Keys


@pytest.fixture
async def hub(redis_url: str) -> AsyncIterator[EventHub]:
    hub = EventHub(redis_url, Keys(f"hub-{uuid.uuid4().hex[:8]}"), sweep_every_s=0.05)
    await hub.start()
    yield hub
    await hub.stop()


def _event(generation: uuid.UUID, owner: uuid.UUID, seq: int) -> BusEvent:
    return BusEvent(generation, owner, seq, EventKind.STATUS, {"status": "RUNNING"}, time.time())


async def test_events_reach_generation_owner_and_global_listeners(hub: EventHub, redis_url: str) -> None:
    generation, owner = uuid.uuid4(), uuid.uuid4()
    mine, owners, everything, other = (
        hub.listen(generation), hub.listen(owner), hub.listen(None), hub.listen(uuid.uuid4())
    )  # fmt: skip
    redis = Redis.from_url(redis_url)
    try:
        assert await publish(redis, hub._keys, _event(generation, owner, 1))
        for listener in (mine, owners, everything):
            item = await asyncio.wait_for(listener.get(), 5)
            assert isinstance(item, BusEvent) and item.seq == 1 and item.generation_id == generation
        # one decoded event, shared by every local listener
        assert other._items is None
    finally:
        await redis.aclose()
    for listener in (mine, owners, everything, other):
        listener.close()
    assert hub.listener_count == 0


async def test_a_quiet_listener_is_told_and_a_busy_one_is_not(hub: EventHub, redis_url: str) -> None:
    """A publish that never reached Redis is found by the check a quiet subscriber makes when told QUIET."""
    generation, owner = uuid.uuid4(), uuid.uuid4()
    quiet = hub.listen(generation, quiet_after_s=0.3)
    never = hub.listen(generation)  # no quiet_after_s: silence is fine
    assert await asyncio.wait_for(quiet.get(), 5) is QUIET
    # After QUIET the clock starts again: the next one comes after another quiet period, not at once.
    started = time.monotonic()
    assert await asyncio.wait_for(quiet.get(), 5) is QUIET
    assert time.monotonic() - started >= 0.25
    assert never._items is None or QUIET not in never._items
    # While events keep arriving, no QUIET is put in between.
    busy = hub.listen(generation, quiet_after_s=0.5)
    redis = Redis.from_url(redis_url)
    try:
        for seq in range(1, 11):
            assert await publish(redis, hub._keys, _event(generation, owner, seq))
            assert await asyncio.wait_for(busy.get(), 5) is not QUIET
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    for listener in (quiet, never, busy):
        listener.close()
