"""BusEvent's wire form: compact JSON that decodes to the same event; committed changes published in order."""

from __future__ import annotations

import asyncio
import json
import uuid

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from db.events import EventKind
from db.states import Status
from db.transitions import transition
from jobs.bus import BusEvent, publish_changes
from jobs.keys import Keys
from tests.db.rows import new_generation, new_user


def test_encode_is_compact_json_and_round_trips() -> None:
    event = BusEvent(uuid.uuid4(), uuid.uuid4(), 7, EventKind.PROGRESS, {"percent": 12.5, "node": "ü"}, 1.5)
    raw = event.encode()
    assert raw == json.dumps(
        {
            "g": str(event.generation_id),
            "o": str(event.owner_id),
            "s": 7,
            "k": EventKind.PROGRESS.value,
            "p": {"percent": 12.5, "node": "ü"},
            "t": 1.5,
        },
        separators=(",", ":"),
    )
    assert " " not in raw and "\\u00fc" in raw
    assert BusEvent.decode(raw) == event


async def test_publish_changes_sends_them_in_order_and_forgives_an_unreachable_bus(
    redis_url: str, session: AsyncSession
) -> None:
    owner = await new_user(session)
    created, _ = await new_generation(session, owner)
    running = await transition(session, generation_id=created.generation.id, to=Status.RUNNING, values={"lease": "job"})
    await session.commit()
    keys = Keys(f"bus-{uuid.uuid4().hex[:8]}")
    redis: Redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(keys.events)
        assert await publish_changes(redis, keys, [created, running]) is True
        received: list[BusEvent] = []
        async with asyncio.timeout(5):
            while len(received) < 2:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    received.append(BusEvent.decode(message["data"]))
        assert [(e.seq, e.payload["status"], e.owner_id) for e in received] == [
            (1, "QUEUED", owner.id),
            (2, "RUNNING", owner.id),
        ]
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()

    nowhere: Redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        assert await publish_changes(nowhere, keys, [created, running]) is False  # logged, not raised
    finally:
        await nowhere.aclose()
