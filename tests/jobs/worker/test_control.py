"""jobs.worker.control: wake-ups and cancel requests from the control channel reach the worker and the run;
anything else on the channel is ignored without ending the listener."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from types import SimpleNamespace
from typing import Any

from redis.asyncio import Redis

from jobs.keys import Keys
from jobs.worker.control import listen


class Worker:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.woken = asyncio.Event()

    def start_now(self, job_id: str) -> None:
        self.started.append(job_id)
        self.woken.set()


class Run:
    def __init__(self) -> None:
        self.cancels = 0

    def request_cancel(self) -> None:
        self.cancels += 1


async def test_wakes_and_cancels_reach_their_worker_and_run_and_nothing_else_does(redis_url: str) -> None:
    keys = Keys(f"control-{uuid.uuid4().hex[:8]}")
    running, other = uuid.uuid4(), uuid.uuid4()
    run = Run()
    runtime: Any = SimpleNamespace(
        settings=SimpleNamespace(required_redis_url=redis_url), keys=keys, running={running: run}
    )
    worker = Worker()
    ready = asyncio.Event()
    listener = asyncio.create_task(listen(runtime, worker, ready))  # type: ignore[arg-type]
    redis = Redis.from_url(redis_url)
    try:
        await asyncio.wait_for(ready.wait(), 10)
        messages: list[Any] = [
            {"op": "wake", "job": "gen:first"},
            "not json at all",
            {"op": "wake"},
            {"op": "wake", "job": ""},
            {"op": "wake", "job": 5},
            {"op": "cancel", "g": str(other)},  # not running here
            {"op": "cancel", "g": "not-a-uuid"},
            {"op": "cancel"},
            {"op": "cancel", "g": str(running)},
            {"op": "dance"},
            {"op": "wake", "job": "gen:last"},
        ]
        for message in messages:
            await redis.publish(keys.control, message if isinstance(message, str) else json.dumps(message))
        async with asyncio.timeout(10):
            while "gen:last" not in worker.started:  # published last: everything before it was handled
                worker.woken.clear()
                await worker.woken.wait()
        assert worker.started == ["gen:first", "gen:last"]
        assert run.cancels == 1
        assert not listener.done()
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await redis.aclose()
