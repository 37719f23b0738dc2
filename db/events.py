"""The durable event log of a generation, read for replay."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import GenerationEvent

__all__ = ["EventKind", "events_after"]


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
