"""Putting generations on the arq queue, and waking workers so pickup does not wait for a poll."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

from arq.connections import ArqRedis

from jobs.bus import BusEvent
from jobs.keys import Keys

__all__ = [
    "JOB_FUNCTION",
    "RateLimit",
    "RateLimited",
    "attempt_of",
    "count_rate",
    "enqueue_generation",
    "give_back_rate",
    "job_id_for",
    "request_cancel",
    "take_rate",
    "wake",
]

JOB_FUNCTION = "generate"


def job_id_for(generation_id: uuid.UUID, attempt: int, suffix: str = "") -> str:
    """arq deduplicates on job id: one job per generation attempt (plus recovery jobs)."""
    base = f"gen:{generation_id}:{attempt}"
    return f"{base}:{suffix}" if suffix else base


def attempt_of(job_id: str) -> int | None:
    """The attempt a `job_id_for` id was made for; None for any other id."""
    parts = job_id.split(":")
    if len(parts) < 3 or parts[0] != "gen" or not parts[2].isdigit():
        return None
    return int(parts[2])


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A counter of one owner's enqueues in a fixed window (a Redis key that expires), and its limit."""

    key: str
    limit: int
    ttl_s: int = 120


class RateLimited(Exception):
    """Work refused by its RateLimit (`take_rate`)."""


# A RateLimit counted: 1 when within its limit, 0 when over it (counted either way: a refused create
# counts, so a client hammering over its limit stays over it).
_TAKE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if count > tonumber(ARGV[1]) then
  return 0
end
return 1
"""
# A count given back (work counted ahead that was not made); a window that expired meanwhile stays gone.
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DECR', KEYS[1])
end
return 1
"""


async def count_rate(redis: ArqRedis, rate: RateLimit) -> bool:
    """Count one unit of `rate` in one round trip; False when that goes over its limit."""
    return bool(await redis.register_script(_TAKE)(keys=[rate.key], args=[rate.limit, rate.ttl_s]))


async def take_rate(redis: ArqRedis, rate: RateLimit) -> None:
    """Count one unit of `rate`; RateLimited when that goes over its limit."""
    if not await count_rate(redis, rate):
        raise RateLimited(rate.key)


async def give_back_rate(redis: ArqRedis, rate: RateLimit) -> None:
    """Undo one `count_rate` whose work was not made after all."""
    await redis.register_script(_GIVE_BACK)(keys=[rate.key], args=[])


async def enqueue_generation(
    redis: ArqRedis,
    keys: Keys,
    *,
    generation_id: uuid.UUID,
    attempt: int,
    defer_s: float = 0.0,
    suffix: str = "",
    event: str = "",
) -> bool:
    """Enqueue the job; False when an identical job is already queued or running.

    The job goes through arq's `ArqRedis.enqueue_job` (which deduplicates on the job id). Then, in
    one round trip, `event` (an encoded bus event: the QUEUED status the caller just committed) is
    published on the events channel and, without a delay, the workers are woken on the control
    channel (`wake`): pickup is a pub/sub hop, not the wait for a poll. A worker starts on the wake-up
    (or its poll, which then needs arq's four round trips and a claim before it publishes anything),
    so the event reaches subscribers first; one that arrived second would be read from the log anyway.
    """
    job_id = job_id_for(generation_id, attempt, suffix)
    job = await redis.enqueue_job(
        JOB_FUNCTION,
        str(generation_id),
        _job_id=job_id,
        _queue_name=keys.queue,
        _defer_by=timedelta(seconds=defer_s) if defer_s > 0 else None,
    )
    due = job is not None and defer_s <= 0
    if event or due:
        async with redis.pipeline(transaction=False) as pipe:
            if event:
                pipe.publish(keys.events, event)
            if due:
                pipe.publish(keys.control, _wake_message(job_id))
            await pipe.execute()
    return job is not None


def _wake_message(job_id: str) -> str:
    return json.dumps({"op": "wake", "job": job_id})


async def wake(redis: ArqRedis, keys: Keys, job_id: str) -> None:
    """Tell the workers a job is due now: one with a free slot starts it at once (arq's
    `Worker.start_jobs`), ahead of its next poll of the queue."""
    await redis.publish(keys.control, _wake_message(job_id))


async def request_cancel(
    redis: ArqRedis, keys: Keys, *, generation_id: uuid.UUID, event: BusEvent | None = None
) -> None:
    """Tell whichever worker runs the generation to delete or interrupt its ComfyUI prompt.

    With `event` (the CANCELLING status just committed), it is published on the events channel
    first, in the same round trip.
    """
    control = json.dumps({"op": "cancel", "g": str(generation_id)})
    if event is None:
        await redis.publish(keys.control, control)
        return
    async with redis.pipeline(transaction=False) as pipe:
        pipe.publish(keys.events, event.encode())
        pipe.publish(keys.control, control)
        await pipe.execute()
