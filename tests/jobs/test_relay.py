"""jobs.relay: what a running generation's progress and previews look like on the bus, and when they go."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.events import Preview
from db.events import EventKind
from db.payloads import PreviewPayload, ProgressPayload
from db.states import Phase
from jobs.bus import BusEvent
from jobs.keys import Keys
from jobs.relay import Relay


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def bus(redis: Redis) -> AsyncIterator[tuple[Keys, PubSub]]:
    keys = Keys(f"relay-{uuid.uuid4().hex[:8]}")
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(keys.events)
    yield keys, pubsub
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _next(pubsub: PubSub) -> BusEvent:
    async with asyncio.timeout(5):
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None:
                return BusEvent.decode(message["data"])


def _relay(
    redis: Redis, keys: Keys, sessions: async_sessionmaker[AsyncSession], preview_interval_s: float = 0.25
) -> Relay:
    return Relay(
        redis=redis,
        keys=keys,
        sessions=sessions,
        generation_id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        lease="nobody/0",
        seq=3,
        db_interval_s=60.0,  # no snapshot write during the test (its row does not exist)
        preview_interval_s=preview_interval_s,
    )


async def test_progress_goes_out_in_order_with_its_emitted_time_and_repeats_are_dropped(
    redis: Redis, bus: tuple[Keys, PubSub], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    keys, pubsub = bus
    relay = _relay(redis, keys, session_factory)
    relay.queue_progress(phase=Phase.BACKEND_QUEUE, queue_position=2)
    relay.queue_progress(phase=Phase.BACKEND_QUEUE, queue_position=2)  # nothing new: not sent
    relay.queue_progress(emitted_at=1.5, phase=Phase.EXECUTING, queue_position=None, step=1, max_steps=4)
    await relay.flush()
    first, second = await _next(pubsub), await _next(pubsub)
    assert (first.kind, first.seq) == (EventKind.PROGRESS, 3)
    assert first.payload == ProgressPayload(phase=Phase.BACKEND_QUEUE, queue_position=2).encode()
    assert second.payload["emittedAt"] == 1.5 and second.payload["maxSteps"] == 4
    assert relay.state.emitted_at is None  # a step's time belongs to its message, not to the state
    await relay.close()


async def test_a_wait_says_why_until_the_phase_changes(
    redis: Redis, bus: tuple[Keys, PubSub], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    keys, pubsub = bus
    relay = _relay(redis, keys, session_factory)
    await relay.progress(phase=Phase.BACKEND_WAIT, reason="down", retry_at=5.0, deadline_at=9.0)
    waiting = ProgressPayload.decode((await _next(pubsub)).payload)
    assert (waiting.phase, waiting.reason, waiting.deadline_at) == (Phase.BACKEND_WAIT, "down", 9.0)
    await relay.progress(phase=Phase.BACKEND_QUEUE)
    queued = await _next(pubsub)
    assert not {"reason", "retryAt", "deadlineAt"} & set(queued.payload)
    assert relay.state.columns()["phase_reason"] is None
    await relay.close()


async def test_previews_are_latest_wins_and_stored_under_their_token(
    redis: Redis, bus: tuple[Keys, PubSub], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    keys, pubsub = bus
    relay = _relay(redis, keys, session_factory, preview_interval_s=0.2)
    relay.preview(Preview("p", "9", b"first", "image/jpeg"))
    relay.preview(Preview("p", "9", b"second", "image/jpeg"))  # within the interval: only the newest waiting one goes
    relay.preview(Preview("p", "9", b"third", "image/png"))
    first = PreviewPayload.decode((await _next(pubsub)).payload)
    last = await _next(pubsub)
    assert last.kind is EventKind.PREVIEW
    latest = PreviewPayload.decode(last.payload)
    assert await redis.get(keys.preview(first.token)) == b"first"
    assert (await redis.get(keys.preview(latest.token)), latest.mime) == (b"third", "image/png")
    await relay.close()
