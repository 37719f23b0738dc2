"""The control channel: wake-ups (a job was enqueued) and cancel requests, on one pub/sub connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid

from redis.asyncio import Redis

from jobs.worker.arq_worker import SafelightWorker
from jobs.worker.runtime import Runtime

__all__ = ["listen"]

log = logging.getLogger(__name__)


async def listen(runtime: Runtime, worker: SafelightWorker, ready: asyncio.Event) -> None:
    """Act on control messages until cancelled; reconnects after Redis restarts."""
    while True:
        client: Redis = Redis.from_url(runtime.settings.required_redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(runtime.keys.control)
            ready.set()  # anything enqueued while we were not listening: the next poll finds it
            async for message in pubsub.listen():
                _on_control(runtime, worker, message["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("control channel lost (%s); reconnecting", exc)
            await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()


def _on_control(runtime: Runtime, worker: SafelightWorker, raw: bytes) -> None:
    try:
        message = json.loads(raw)
    except ValueError:
        return
    if message.get("op") == "wake":
        job_id = message.get("job")
        if isinstance(job_id, str) and job_id:
            worker.start_now(job_id)
    elif message.get("op") == "cancel":
        with contextlib.suppress(ValueError, KeyError):
            run = runtime.running.get(uuid.UUID(message["g"]))
            if run is not None:
                run.request_cancel()
