"""Relaying a running generation's progress and previews: live to Redis, coalesced to PostgreSQL.

Every ComfyUI progress message becomes one PROGRESS event on the bus at once
(the latency path). The generation row's progress columns are only a snapshot
for late readers, written at most every `db_interval_s` and never on the hot
path. Previews are latest-wins: at most one every `preview_interval_s`; each is
stored in Redis under a random token for `preview_ttl_s` and announced by URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.events import Preview
from db.engine import single_statement
from db.events import EventKind
from db.payloads import PreviewPayload, ProgressPayload
from db.states import Phase
from db.transitions import update_progress
from jobs.bus import BusEvent, publish
from jobs.keys import Keys

__all__ = ["Relay"]

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self,
        *,
        redis: Redis,
        keys: Keys,
        sessions: async_sessionmaker[AsyncSession],
        generation_id: uuid.UUID,
        owner_id: uuid.UUID,
        lease: str,
        seq: int,
        state: ProgressPayload | None = None,
        db_interval_s: float = 0.5,
        preview_interval_s: float = 0.25,
        preview_ttl_s: int = 300,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._sessions = sessions
        self.generation_id = generation_id
        self.owner_id = owner_id
        self.lease = lease
        self.seq = seq  # the last durable sequence number this job wrote
        self._db_interval_s = db_interval_s
        self._preview_interval_s = preview_interval_s
        self._preview_ttl_s = preview_ttl_s
        # A job that took over goes on from what the row says.
        self.state = state if state is not None else ProgressPayload(phase=Phase.SUBMITTING)
        self._outbox: list[str] = []  # encoded events waiting for flush(), in order
        # The claim has just written the row's progress (SUBMITTING): the first snapshot write waits
        # one interval like any other, so a job shorter than that writes none (one transaction less).
        self._db_written_at = time.monotonic()
        self._db_task: asyncio.Task[None] | None = None
        self._db_dirty = False
        self._preview_sent_at = 0.0
        self._preview_pending: Preview | None = None
        self._preview_timer: asyncio.TimerHandle | None = None
        self._preview_tasks: set[asyncio.Task[None]] = set()

    def _event(self, kind: EventKind, payload: ProgressPayload | PreviewPayload) -> BusEvent:
        return BusEvent(self.generation_id, self.owner_id, self.seq, kind, payload.encode(), time.time())

    async def progress(self, emitted_at: float | None = None, **changes: Any) -> None:
        """Publish the progress state after `changes` (ProgressPayload fields, and anything queued
        before); schedule a row update. A change that changes nothing is not published (ComfyUI repeats
        itself)."""
        self.queue_progress(emitted_at, **changes)
        await self.flush()

    def queue_progress(self, emitted_at: float | None = None, **changes: Any) -> None:
        """Like `progress`, but the message waits for the next `flush()`/`progress()`.

        Still one PUBLISH per message; a burst of them shares one round trip to Redis.
        """
        state = self.state
        if emitted_at is None and all(getattr(state, k) == v for k, v in changes.items()):
            return
        self.state = state = state.changed(**changes)
        message = state if emitted_at is None else state.replace(emitted_at=emitted_at)
        self._outbox.append(self._event(EventKind.PROGRESS, message).encode())
        self._db_dirty = True
        if self._db_task is None:
            self._db_task = asyncio.create_task(self._write_db())

    async def announce(self, **changes: Any) -> None:
        """Publish a progress change without writing the row (the caller's own write recorded it)."""
        self.state = self.state.changed(**changes)
        self._outbox.append(self._event(EventKind.PROGRESS, self.state).encode())
        await self.flush()

    def queue_event(self, event: BusEvent) -> None:
        """Send `event` (a committed durable one) with the next `flush()`, before what is queued after it."""
        self._outbox.append(event.encode())

    async def flush(self) -> None:
        """Publish the queued messages, in order, in one pipeline."""
        if not self._outbox:
            return
        batch, self._outbox = self._outbox, []
        channel = self._keys.events
        try:
            if len(batch) == 1:
                await self._redis.publish(channel, batch[0])
                return
            async with self._redis.pipeline(transaction=False) as pipe:
                for message in batch:
                    pipe.publish(channel, message)
                await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # Progress is ephemeral: the next message (or the row snapshot) supersedes a lost one; a
            # durable event is in PostgreSQL, and subscribers re-read the log when the bus reconnects.
            log.warning("event bus unavailable, %d events of %s not published: %s", len(batch), self.generation_id, exc)

    async def write_now(self) -> bool:
        """Write the progress snapshot at once (a wait's reason and deadline); False once not ours."""
        self._db_dirty = False
        self._db_written_at = time.monotonic()
        async with single_statement(self._sessions) as session:
            return await update_progress(
                session, generation_id=self.generation_id, lease=self.lease, values=self.state.columns()
            )

    async def _write_db(self) -> None:
        try:
            wait = self._db_interval_s - (time.monotonic() - self._db_written_at)
            if wait > 0:
                await asyncio.sleep(wait)
            while self._db_dirty:
                self._db_dirty = False
                self._db_written_at = time.monotonic()
                async with single_statement(self._sessions) as session:
                    await update_progress(
                        session, generation_id=self.generation_id, lease=self.lease, values=self.state.columns()
                    )
                await asyncio.sleep(self._db_interval_s)
        except Exception:
            log.exception("progress snapshot write failed for %s", self.generation_id)
        finally:
            self._db_task = None

    def preview(self, preview: Preview) -> None:
        """Latest-wins: send now if the interval has passed, else keep only the newest for later."""
        self._preview_pending = preview
        wait = self._preview_interval_s - (time.monotonic() - self._preview_sent_at)
        if wait <= 0:
            self._flush_preview()
        elif self._preview_timer is None:
            self._preview_timer = asyncio.get_running_loop().call_later(wait, self._flush_preview)

    def _flush_preview(self) -> None:
        self._preview_timer = None
        preview, self._preview_pending = self._preview_pending, None
        if preview is None:
            return
        self._preview_sent_at = time.monotonic()
        task = asyncio.create_task(self._send_preview(preview))
        self._preview_tasks.add(task)
        task.add_done_callback(self._preview_tasks.discard)

    async def _send_preview(self, preview: Preview) -> None:
        token = secrets.token_urlsafe(16)
        try:
            await self._redis.set(self._keys.preview(token), preview.image, ex=self._preview_ttl_s)
            await publish(
                self._redis,
                self._keys,
                self._event(EventKind.PREVIEW, PreviewPayload(token=token, mime=preview.mime)),
            )
        except (RedisError, OSError) as exc:
            log.warning("preview for %s dropped: %s", self.generation_id, exc)

    def stop_previews(self) -> None:
        """Drop a throttled preview still waiting: the images themselves are coming."""
        if self._preview_timer is not None:
            self._preview_timer.cancel()
            self._preview_timer = None
        self._preview_pending = None

    async def close(self) -> None:
        """Stop timers and wait for in-flight writes (the final state is written by the transition)."""
        await self.flush()
        self.stop_previews()
        tasks = [*self._preview_tasks]
        if self._db_task is not None:
            self._db_task.cancel()
            tasks.append(self._db_task)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
