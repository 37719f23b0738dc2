"""One Redis pub/sub connection per API process, fanned out in memory to every local subscriber.

Subscribers register by generation id, by owner, or for everything (admins).
When the Redis connection drops and comes back, every subscriber receives
`GAP`: events may have been published meanwhile, so it re-reads the durable
log from PostgreSQL. A subscriber's registration is removed in `close()`,
which subscription resolvers call in `finally` (an unsubscribe or an abrupt
disconnect arrives there as CancelledError).

A listener opened with `quiet_after_s` also receives `QUIET` when it has heard
nothing for that long (it then checks the log for a publish that never reached
Redis; graph/lastseq.py shares that check among a generation's subscribers).
One sweep per second over all listeners does this, rather than a timer per
waiting subscriber: with 10,000 subscribers a timer per wait was both memory
and work on every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Final

from redis.asyncio import Redis

from jobs.bus import BusEvent
from jobs.keys import Keys

__all__ = ["GAP", "QUIET", "EventHub", "Listener"]

log = logging.getLogger(__name__)

GAP: Final = object()  # the bus reconnected: events may have been missed
QUIET: Final = object()  # nothing heard for the listener's `quiet_after_s`


class Listener:
    """One subscriber's inbox. Iterate with `await get()`; always `close()`.

    A deque and one future while waiting, not an asyncio.Queue: with 10,000 idle
    subscriptions per process the inbox is most of what each one holds, and the
    hub puts every event into it (see bench/subscriptions.py). The deque exists
    only while it holds something (an empty one is a 600-byte block).
    """

    __slots__ = ("_heard", "_hub", "_items", "_key", "_quiet_after_s", "_waiter", "closed")

    def __init__(self, hub: EventHub, key: uuid.UUID | None, quiet_after_s: float | None) -> None:
        self._hub = hub
        self._key = key
        self._items: deque[BusEvent | object] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._quiet_after_s = quiet_after_s
        self._heard = hub.clock
        self.closed = False

    def put(self, item: BusEvent | object) -> None:
        self._heard = self._hub.clock
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> BusEvent | object:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub._remove(self, self._key)


class EventHub:
    def __init__(
        self, redis_url: str, keys: Keys, *, reconnect_delay_s: float = 0.2, sweep_every_s: float = 1.0
    ) -> None:
        self._redis_url = redis_url
        self._keys = keys
        self._reconnect_delay_s = reconnect_delay_s
        self._sweep_every_s = sweep_every_s
        # Keyed by generation id or owner id (both UUIDs, never equal); None = everything.
        self._listeners: dict[uuid.UUID | None, set[Listener]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()
        self.received = 0
        self.clock = time.monotonic()  # when the hub last heard anything (or swept)

    @property
    def listener_count(self) -> int:
        return sum(len(s) for s in self._listeners.values())

    async def start(self, *, wait_s: float = 10.0) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._sweep())]
        await asyncio.wait_for(self.connected.wait(), wait_s)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def listen(self, key: uuid.UUID | None, *, quiet_after_s: float | None = None) -> Listener:
        """Events of one generation, or of one owner, or (None) all of them; QUIET after `quiet_after_s` of silence."""
        listener = Listener(self, key, quiet_after_s)
        self._listeners.setdefault(key, set()).add(listener)
        return listener

    def _remove(self, listener: Listener, key: uuid.UUID | None) -> None:
        bucket = self._listeners.get(key)
        if bucket is not None:
            bucket.discard(listener)
            if not bucket:
                del self._listeners[key]

    def _dispatch(self, event: BusEvent | object, keys: tuple[uuid.UUID | None, ...]) -> None:
        listeners = self._listeners
        for key in keys:
            bucket = listeners.get(key)
            if bucket is not None:
                for listener in bucket:
                    listener.put(event)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_every_s)
            now = self.clock = time.monotonic()
            for bucket in list(self._listeners.values()):
                for listener in list(bucket):
                    quiet = listener._quiet_after_s
                    if quiet is not None and now - listener._heard > quiet:
                        listener.put(QUIET)

    async def _run(self) -> None:
        first = True
        on_message: Callable[[bytes], None] = self._on_message
        while True:
            client: Redis = Redis.from_url(self._redis_url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._keys.events)
                self.connected.set()
                if not first:
                    log.warning("event bus reconnected; subscribers re-read the log")
                    for bucket in list(self._listeners.values()):
                        for listener in list(bucket):
                            listener.put(GAP)
                first = False
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is not None:
                        on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                log.warning("event bus connection lost: %s", exc)
                await asyncio.sleep(self._reconnect_delay_s)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()

    def _on_message(self, raw: bytes) -> None:
        self.received += 1
        self.clock = time.monotonic()
        try:
            event = BusEvent.decode(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("dropping malformed bus message")
            return
        self._dispatch(event, (event.generation_id, event.owner_id, None))
