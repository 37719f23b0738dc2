"""What the system status counts in the database: generations by status, now and over the last hour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Generation
from db.states import Status

__all__ = ["GenerationCounts", "generation_counts"]


@dataclass(frozen=True, slots=True)
class GenerationCounts:
    queued: int
    running: int  # RUNNING and CANCELLING: both hold a worker
    oldest_queued_at: datetime | None
    succeeded: int  # these three: finished since the `finished_since` asked for
    failed: int
    cancelled: int


async def generation_counts(session: AsyncSession, *, finished_since: datetime) -> GenerationCounts:
    """Active generations by status, those finished since `finished_since` by outcome, and when the
    oldest QUEUED one was created (three small aggregate queries)."""
    active = dict(
        (
            await session.execute(
                select(Generation.status, func.count())
                .where(Generation.status.in_((Status.QUEUED, Status.RUNNING, Status.CANCELLING)))
                .group_by(Generation.status)
            )
        ).all()
    )
    finished = dict(
        (
            await session.execute(
                select(Generation.status, func.count())
                .where(Generation.finished_at >= finished_since)
                .group_by(Generation.status)
            )
        ).all()
    )
    oldest = (
        await session.execute(select(func.min(Generation.created_at)).where(Generation.status == Status.QUEUED))
    ).scalar_one()
    return GenerationCounts(
        queued=int(active.get(Status.QUEUED, 0)),
        running=int(active.get(Status.RUNNING, 0)) + int(active.get(Status.CANCELLING, 0)),
        oldest_queued_at=oldest,
        succeeded=int(finished.get(Status.SUCCEEDED, 0)),
        failed=int(finished.get(Status.FAILED, 0)),
        cancelled=int(finished.get(Status.CANCELLED, 0)),
    )
