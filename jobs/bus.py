"""The event bus: what travels on Redis pub/sub between workers and API processes.

One channel carries every generation event; each API process holds one
subscription to it and fans events out in memory (graph/fanout.py). A message
is small JSON: durable events (STATUS, IMAGE) carry the sequence number they
were stored with; ephemeral ones (PROGRESS, PREVIEW) carry the sequence number
of the last durable event their sender knew, so a subscriber drops them once it
has seen anything newer (a late progress after CANCELLED cannot show).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from db.events import EventKind
from db.models import GenerationEvent
from db.transitions import Change
from jobs.keys import Keys

__all__ = ["BusEvent", "publish", "publish_change", "publish_changes"]

log = logging.getLogger(__name__)

# json.dumps with any non-default argument builds a JSONEncoder per call; one (stateless) is enough.
_encode = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class BusEvent:
    generation_id: uuid.UUID
    owner_id: uuid.UUID
    seq: int
    kind: EventKind
    payload: dict[str, Any]
    at: float  # unix time the event was published (or stored)
    # What a process derives from this event once for all its local subscribers (the GraphQL event
    # object per base URL, see graph.subscriptions.to_event); not part of the event itself.
    views: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def durable(self) -> bool:
        return self.kind in (EventKind.STATUS, EventKind.IMAGE)

    def encode(self) -> str:
        return _encode(
            {
                "g": str(self.generation_id),
                "o": str(self.owner_id),
                "s": self.seq,
                "k": self.kind.value,
                "p": self.payload,
                "t": self.at,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> BusEvent:
        data = json.loads(raw)
        return cls(
            generation_id=uuid.UUID(data["g"]),
            owner_id=uuid.UUID(data["o"]),
            seq=int(data["s"]),
            kind=EventKind(data["k"]),
            payload=data["p"],
            at=float(data["t"]),
        )

    @classmethod
    def from_row(cls, event: GenerationEvent, *, owner_id: uuid.UUID) -> BusEvent:
        return cls(
            generation_id=event.generation_id,
            owner_id=owner_id,
            seq=event.seq,
            kind=EventKind(event.kind),
            payload=event.payload,
            at=event.created_at.timestamp() if event.created_at else time.time(),
        )


async def publish(redis: Redis, keys: Keys, event: BusEvent) -> bool:
    """Publish; False (logged) when Redis is unreachable.

    A lost publish loses nothing durable: STATUS and IMAGE events are already
    in PostgreSQL, and subscribers re-read the log when the bus reconnects.
    So a Redis outage never fails the job that publishes.
    """
    try:
        await redis.publish(keys.events, event.encode())
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        log.warning("event bus unavailable, %s of %s not published: %s", event.kind.value, event.generation_id, exc)
        return False
    return True


async def publish_change(redis: Redis, keys: Keys, change: Change) -> BusEvent:
    """Publish a committed durable change; call only after the transaction commits."""
    event = BusEvent.from_row(change.event, owner_id=change.generation.owner_id)
    await publish(redis, keys, event)
    return event


async def publish_changes(redis: Redis, keys: Keys, changes: Sequence[Change]) -> bool:
    """`publish_change` of changes one statement committed, in order, in one round trip (and as forgiving)."""
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for change in changes:
                pipe.publish(keys.events, BusEvent.from_row(change.event, owner_id=change.generation.owner_id).encode())
            await pipe.execute()
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        log.warning("event bus unavailable, events of %s not published: %s", changes[0].generation.id, exc)
        return False
    return True
