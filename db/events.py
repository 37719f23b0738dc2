"""The durable event log of a generation, read for replay."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Generation, GenerationEvent

__all__ = ["EventKind", "EventPosition", "database_now", "events_after", "owner_events_after"]

# A place in the event log of many generations: (created_at, generation_id, seq), the order it is read in.
EventPosition = tuple[datetime, uuid.UUID, int]


class EventKind(enum.Enum):
    """What a Safelight event says. STATUS and IMAGE are durable (stored with their
    sequence number); PROGRESS, PREVIEW and DELETED are not."""

    STATUS = "STATUS"
    IMAGE = "IMAGE"
    PROGRESS = "PROGRESS"
    PREVIEW = "PREVIEW"
    DELETED = "DELETED"


async def events_after(
    session: AsyncSession, *, generation_id: uuid.UUID, after_seq: int, limit: int = 10_000
) -> Sequence[GenerationEvent]:
    stmt = (
        select(GenerationEvent)
        .where(GenerationEvent.generation_id == generation_id, GenerationEvent.seq > after_seq)
        .order_by(GenerationEvent.seq)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def owner_events_after(
    session: AsyncSession,
    *,
    namespace: str,
    owner_id: uuid.UUID | None,
    after: EventPosition,
    limit: int = 1000,
) -> list[tuple[GenerationEvent, uuid.UUID]]:
    """Durable events of one owner's generations (None: everyone's) of `namespace` after `after`, in
    (created_at, generation_id, seq) order, each with its generation's owner; at most `limit`.

    Served by the index on generation_events.created_at: a read scans only the events since `after`.
    """
    stmt = (
        select(GenerationEvent, Generation.owner_id)
        .join(Generation, Generation.id == GenerationEvent.generation_id)
        .where(
            Generation.namespace == namespace,
            GenerationEvent.created_at >= after[0],
            tuple_(GenerationEvent.created_at, GenerationEvent.generation_id, GenerationEvent.seq) > tuple_(*after),
        )
        .order_by(GenerationEvent.created_at, GenerationEvent.generation_id, GenerationEvent.seq)
        .limit(limit)
    )
    if owner_id is not None:
        stmt = stmt.where(Generation.owner_id == owner_id)
    return [(event, owner) for event, owner in (await session.execute(stmt)).all()]


async def database_now(session: AsyncSession) -> datetime:
    """The database's clock (event times are stamped by it)."""
    return (await session.execute(select(func.now()))).scalar_one()
