"""A generation's last sequence number, read once for all of its quiet subscribers.

A subscriber that has heard nothing for a while checks the log (graph/fanout.py `QUIET`): has the
generation's `last_seq` moved past what it has seen? One read per subscriber would let thousands of
subscribers of one generation exhaust the API's connection pool, so a read started less than `ttl_s`
ago is shared. A shared answer is at most `ttl_s` old; that is only used to
decide that nothing is new, and whatever was committed after it arrives on the bus or at the next check.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import generation_reads

__all__ = ["LastSeqReads"]


class LastSeqReads:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl_s: float = 1.0) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._reads: dict[uuid.UUID, tuple[float, asyncio.Future[int | None]]] = {}
        self.reads = 0  # how many reads reached the database (for tests and metrics)

    async def get(self, generation_id: uuid.UUID) -> int | None:
        """The generation's last durable sequence number (None: it no longer exists), possibly `ttl_s` old."""
        now = time.monotonic()
        entry = self._reads.get(generation_id)
        if entry is None or now - entry[0] > self._ttl_s:
            if len(self._reads) >= 1024:
                self._reads = {k: v for k, v in self._reads.items() if now - v[0] <= self._ttl_s}
            read = asyncio.ensure_future(self._read(generation_id))
            entry = self._reads[generation_id] = (now, read)
            read.add_done_callback(lambda done: self._forget_failed(generation_id, done))
        # shielded: one waiter going away (an unsubscribe) must not cancel the read the others wait for
        return await asyncio.shield(entry[1])

    async def _read(self, generation_id: uuid.UUID) -> int | None:
        self.reads += 1
        async with self._sessions() as session:
            return await generation_reads.last_seq(session, generation_id=generation_id)

    def _forget_failed(self, generation_id: uuid.UUID, read: asyncio.Future[int | None]) -> None:
        """A failed read is not shared after it failed: the next caller (a retry) reads again.

        Its exception is marked as seen: its waiters get it; if all left, nobody must be warned.
        """
        if read.cancelled() or read.exception() is not None:
            entry = self._reads.get(generation_id)
            if entry is not None and entry[1] is read:
                del self._reads[generation_id]
