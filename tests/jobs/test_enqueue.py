"""Job ids: one per generation attempt, and the attempt read back from one; enqueueing against Redis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from redis.asyncio.client import PubSub

from db.events import EventKind
from jobs.bus import BusEvent
from jobs.enqueue import (
    RateLimit,
    RateLimited,
    attempt_of,
    count_rate,
    enqueue_generation,
    give_back_rate,
    job_id_for,
    request_cancel,
    take_rate,
    wake,
)
from jobs.keys import Keys


def test_the_attempt_is_read_back_from_a_job_id() -> None:
    gid = uuid.uuid4()
    assert attempt_of(job_id_for(gid, 3)) == 3
    assert attempt_of(job_id_for(gid, 12, "r-0123456789")) == 12
    for other in ("", "gen", f"gen:{gid}", f"gen:{gid}:x", f"cron:{gid}:1", "4f2c9b"):
        assert attempt_of(other) is None


# -- against Redis: the queue, the wake-up, the event before the job, the rate counter -----------------


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[tuple[ArqRedis, Keys, PubSub]]:
    """An arq connection, keys of a namespace of this test's own, and a subscriber to its events and
    control channels (one connection: messages arrive in the order they were published)."""
    redis = ArqRedis.from_url(redis_url)
    keys = Keys(f"enqueue-{uuid.uuid4().hex[:8]}")
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(keys.events, keys.control)
    yield redis, keys, pubsub
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    jobs = [job_key_prefix + member.decode() for member in await redis.zrange(keys.queue, 0, -1)]
    ours = [key async for key in redis.scan_iter(match=f"{keys.namespace}:*")]
    if jobs or ours:
        await redis.delete(*jobs, *ours)  # no worker ever takes these
    await redis.aclose()


async def _published(pubsub: PubSub) -> tuple[str, str]:
    """(channel, data) of the next message."""
    async with asyncio.timeout(5):
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None:
                return message["channel"].decode(), message["data"].decode()


async def test_one_job_per_attempt_its_event_first_and_a_wake_only_when_due(
    queue: tuple[ArqRedis, Keys, PubSub],
) -> None:
    redis, keys, pubsub = queue
    gid, later, marker = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert await enqueue_generation(redis, keys, generation_id=gid, attempt=1, event='{"queued":1}')
    assert await _published(pubsub) == (keys.events, '{"queued":1}')
    assert await _published(pubsub) == (keys.control, json.dumps({"op": "wake", "job": job_id_for(gid, 1)}))

    assert not await enqueue_generation(redis, keys, generation_id=gid, attempt=1), "the same attempt: no job"
    assert await enqueue_generation(redis, keys, generation_id=gid, attempt=2)
    assert await enqueue_generation(redis, keys, generation_id=later, attempt=1, defer_s=60)
    await wake(redis, keys, job_id_for(marker, 1))
    woken = [json.loads((await _published(pubsub))[1])["job"] for _ in range(2)]
    assert woken == [job_id_for(gid, 2), job_id_for(marker, 1)], "no wake for the refused nor the deferred job"

    queued = dict(await redis.zrange(keys.queue, 0, -1, withscores=True))
    assert set(queued) == {job_id_for(gid, n).encode() for n in (1, 2)} | {job_id_for(later, 1).encode()}
    assert queued[job_id_for(later, 1).encode()] >= (time.time() + 55) * 1000, "due in a minute (arq's ms)"


async def test_a_count_given_back_leaves_the_window_as_it_was(queue: tuple[ArqRedis, Keys, PubSub]) -> None:
    """A create counts its rate side by side with its INSERT (jobs/service/generations.py) and gives the
    count back when nothing was made; a window that expired meanwhile is not made again (no TTL-less key)."""
    redis, keys, _ = queue
    rate = RateLimit(f"{keys.namespace}:rate:someone", limit=2, ttl_s=120)
    assert [await count_rate(redis, rate) for _ in range(3)] == [True, True, False]
    await give_back_rate(redis, rate)
    assert int(await redis.get(rate.key)) == 2
    assert 0 < await redis.ttl(rate.key) <= 120, "the window's counter expires"
    await redis.delete(rate.key)
    await give_back_rate(redis, rate)
    assert not await redis.exists(rate.key)


async def test_take_rate_counts_each_unit_refused_or_not(queue: tuple[ArqRedis, Keys, PubSub]) -> None:
    redis, keys, _ = queue
    rate = RateLimit(f"{keys.namespace}:rate:retries", limit=1, ttl_s=60)
    await take_rate(redis, rate)
    with pytest.raises(RateLimited):
        await take_rate(redis, rate)
    assert int(await redis.get(rate.key)) == 2


async def test_a_cancel_request_follows_its_status_event(queue: tuple[ArqRedis, Keys, PubSub]) -> None:
    redis, keys, pubsub = queue
    gid = uuid.uuid4()
    event = BusEvent(gid, uuid.uuid4(), 5, EventKind.STATUS, {"status": "CANCELLING"}, 1.0)
    await request_cancel(redis, keys, generation_id=gid, event=event)
    assert await _published(pubsub) == (keys.events, event.encode())
    assert await _published(pubsub) == (keys.control, json.dumps({"op": "cancel", "g": str(gid)}))
    await request_cancel(redis, keys, generation_id=gid)  # no event: the control message alone
    assert await _published(pubsub) == (keys.control, json.dumps({"op": "cancel", "g": str(gid)}))
