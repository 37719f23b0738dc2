"""jobs.relay: what a running generation's progress and previews look like on the bus, and when they go;
the row's progress snapshot, coalesced; an unreachable bus."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.events import Preview
from db.events import EventKind
from db.models import Generation
from db.payloads import PreviewPayload, ProgressPayload
from db.states import Phase, Status
from db.transitions import transition
from jobs import relay as relay_module
from jobs.bus import BusEvent
from jobs.keys import Keys
from jobs.relay import Relay
from tests.db.rows import new_generation, new_user


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


LEASE = "relay-test"


@pytest.fixture
async def running(session_factory: async_sessionmaker[AsyncSession]) -> tuple[uuid.UUID, uuid.UUID]:
    """(generation id, owner id) of a RUNNING generation leased to LEASE: the relay's row exists."""
    async with session_factory() as session:
        owner = await new_user(session)
        change, _ = await new_generation(session, owner)
        await transition(session, generation_id=change.generation.id, to=Status.RUNNING, values={"lease": LEASE})
        await session.commit()
    return change.generation.id, owner.id


def _leased(
    redis: Redis,
    keys: Keys,
    sessions: async_sessionmaker[AsyncSession],
    running: tuple[uuid.UUID, uuid.UUID],
    **options: Any,
) -> Relay:
    gid, owner = running
    return Relay(
        redis=redis, keys=keys, sessions=sessions, generation_id=gid, owner_id=owner, lease=LEASE, seq=2, **options
    )


async def _row(sessions: async_sessionmaker[AsyncSession], gid: uuid.UUID) -> Generation:
    async with sessions() as session:
        return (await session.execute(select(Generation).where(Generation.id == gid))).scalar_one()


def _counted_writes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The values of every snapshot write the relay makes from now on (each still reaches the database)."""
    writes: list[dict[str, Any]] = []
    real_update = relay_module.update_progress

    async def counted(session: AsyncSession, **kwargs: Any) -> bool:
        writes.append(kwargs["values"])
        return await real_update(session, **kwargs)

    monkeypatch.setattr(relay_module, "update_progress", counted)
    return writes


async def test_a_durable_event_leaves_between_the_progress_queued_around_it(
    redis: Redis, bus: tuple[Keys, PubSub], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    keys, pubsub = bus
    relay = _relay(redis, keys, session_factory)
    durable = BusEvent(relay.generation_id, relay.owner_id, 4, EventKind.STATUS, {"status": "RUNNING"}, time.time())
    relay.queue_progress(step=1)
    relay.queue_event(durable)
    relay.queue_progress(step=2)
    await relay.flush()
    sent = [await _next(pubsub) for _ in range(3)]
    assert [(e.kind, e.seq, e.payload.get("step")) for e in sent] == [
        (EventKind.PROGRESS, 3, 1),
        (EventKind.STATUS, 4, None),
        (EventKind.PROGRESS, 3, 2),
    ]
    await relay.close()


async def test_the_row_snapshot_is_coalesced_and_ends_at_the_last_state(
    redis: Redis,
    bus: tuple[Keys, PubSub],
    session_factory: async_sessionmaker[AsyncSession],
    running: tuple[uuid.UUID, uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys, pubsub = bus
    writes = _counted_writes(monkeypatch)
    relay = _leased(redis, keys, session_factory, running, db_interval_s=0.3)
    try:
        for step in range(1, 51):
            await relay.progress(phase=Phase.EXECUTING, step=step, max_steps=50, percent=step * 2.0)
        steps = [ProgressPayload.decode((await _next(pubsub)).payload).step for _ in range(50)]
        assert steps == list(range(1, 51)), "every message on the bus, at once"
        async with asyncio.timeout(10):
            while True:
                row = await _row(session_factory, running[0])
                if row.step == 50:
                    break
                await asyncio.sleep(0.02)
        assert (row.percent, row.max_steps, row.phase) == (100.0, 50, Phase.EXECUTING)
        assert 1 <= len(writes) <= 2, f"{len(writes)} row writes for 50 messages within one interval"
    finally:
        await relay.close()


async def test_a_job_shorter_than_the_interval_writes_no_snapshot(
    redis: Redis,
    bus: tuple[Keys, PubSub],
    session_factory: async_sessionmaker[AsyncSession],
    running: tuple[uuid.UUID, uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys, pubsub = bus
    writes = _counted_writes(monkeypatch)
    relay = _leased(redis, keys, session_factory, running, db_interval_s=30.0)
    await relay.progress(step=1)
    assert (await _next(pubsub)).kind is EventKind.PROGRESS
    await relay.close()  # the final state is the terminal transition's to write
    assert writes == []
    assert (await _row(session_factory, running[0])).step is None


async def test_write_now_says_when_the_generation_is_no_longer_ours(
    redis: Redis,
    bus: tuple[Keys, PubSub],
    session_factory: async_sessionmaker[AsyncSession],
    running: tuple[uuid.UUID, uuid.UUID],
) -> None:
    keys, _ = bus
    relay = _leased(redis, keys, session_factory, running)
    relay.state = relay.state.changed(phase=Phase.BACKEND_WAIT, reason="unreachable", retry_at=1e9, deadline_at=2e9)
    assert await relay.write_now() is True
    row = await _row(session_factory, running[0])
    assert (row.phase, row.phase_reason, row.deadline_at is not None) == (Phase.BACKEND_WAIT, "unreachable", True)
    async with session_factory() as session:
        await transition(session, generation_id=running[0], to=Status.CANCELLED)
        await session.commit()
    assert await relay.write_now() is False
    await relay.close()


async def test_a_preview_waiting_when_previews_stop_is_dropped(
    redis: Redis, bus: tuple[Keys, PubSub], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    keys, pubsub = bus
    relay = _relay(redis, keys, session_factory, preview_interval_s=0.2)

    async def next_image() -> bytes | None:
        event = await _next(pubsub)
        assert event.kind is EventKind.PREVIEW
        image: bytes | None = await redis.get(keys.preview(PreviewPayload.decode(event.payload).token))
        return image

    relay.preview(Preview("p", "9", b"sent", "image/jpeg"))
    assert await next_image() == b"sent"
    relay.preview(Preview("p", "9", b"dropped", "image/jpeg"))  # waits for the interval
    relay.stop_previews()  # the images themselves are coming
    await asyncio.sleep(0.25)  # past the interval, when the waiting one would have gone
    relay.preview(Preview("p", "9", b"after", "image/jpeg"))
    assert await next_image() == b"after"
    await relay.close()


async def test_an_unreachable_bus_loses_progress_without_failing_the_job(
    session_factory: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    nowhere: Redis = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    relay = _relay(nowhere, Keys("relay-nowhere"), session_factory)
    try:
        with caplog.at_level(logging.WARNING, logger="jobs.relay"):
            await relay.progress(step=1)
            relay.queue_progress(step=2)
            relay.queue_progress(step=3)
            await relay.flush()
        assert relay.state.step == 3
        warnings = [r.getMessage() for r in caplog.records if r.name == "jobs.relay"]
        assert len(warnings) == 2 and "2 events" in warnings[1], warnings
    finally:
        await relay.close()
        await nowhere.aclose()
