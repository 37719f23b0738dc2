"""Reading generations: one by id, pages for the list, queue places, and the rows recovery looks at."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.cursors import decode_cursor
from db.models import Generation
from db.states import Status

__all__ = [
    "ActiveRow",
    "Page",
    "active_leases",
    "by_idempotency_key",
    "get_generation",
    "last_seq",
    "list_generations",
    "queue_positions",
    "stale_queued",
]


async def get_generation(
    session: AsyncSession, *, generation_id: uuid.UUID, owner_id: uuid.UUID | None = None
) -> Generation | None:
    """One generation; with `owner_id`, only if that user owns it (None = admin view)."""
    stmt = select(Generation).where(Generation.id == generation_id)
    if owner_id is not None:
        stmt = stmt.where(Generation.owner_id == owner_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_idempotency_key(session: AsyncSession, *, owner_id: uuid.UUID, idempotency_key: str) -> Generation | None:
    """The owner's generation created with `idempotency_key`, if any."""
    stmt = select(Generation).where(Generation.owner_id == owner_id, Generation.idempotency_key == idempotency_key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def last_seq(session: AsyncSession, *, generation_id: uuid.UUID) -> int | None:
    """The sequence number of the generation's last durable event; None when it does not exist."""
    stmt = select(Generation.last_seq).where(Generation.id == generation_id)
    return (await session.execute(stmt)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[Generation]
    has_next: bool
    has_previous: bool


async def list_generations(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID | None,
    first: int,
    after: str | None = None,
    statuses: Sequence[Status] = (),
    search: str | None = None,
) -> Page:
    """Newest first, keyset-paginated on (created_at, id); `after` is a cursor of `db.cursors`."""
    stmt: Select[Generation] = select(Generation)
    if owner_id is not None:
        stmt = stmt.where(Generation.owner_id == owner_id)
    if statuses:
        stmt = stmt.where(Generation.status.in_(statuses))
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Generation.prompt.ilike(f"%{escaped}%", escape="\\"))
    if after is not None:
        created, ident = decode_cursor(after)
        stmt = stmt.where(
            or_(
                Generation.created_at < created,
                (Generation.created_at == created) & (Generation.id < ident),
            )
        )
    stmt = stmt.order_by(Generation.created_at.desc(), Generation.id.desc()).limit(first + 1)
    rows: list[Generation] = list((await session.execute(stmt)).scalars())
    return Page(rows=rows[:first], has_next=len(rows) > first, has_previous=after is not None)


async def queue_positions(session: AsyncSession, *, generation_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """1-based places in Safelight's queue (QUEUED, oldest first) of those ids that are queued."""
    if not generation_ids:
        return {}
    ranked = (
        select(
            Generation.id.label("id"),
            func.row_number().over(order_by=(Generation.created_at, Generation.id)).label("position"),
        )
        .where(Generation.status == Status.QUEUED)
        .subquery()
    )
    rows = await session.execute(select(ranked.c.id, ranked.c.position).where(ranked.c.id.in_(list(generation_ids))))
    return {gid: int(position) for gid, position in rows.all()}


# -- recovery ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActiveRow:
    """What recovery needs of an active generation: whose lease, since when."""

    id: uuid.UUID
    status: Status
    lease: str | None
    attempt: int
    updated_at: datetime


async def active_leases(session: AsyncSession, *, namespace: str, limit: int = 10_000) -> list[ActiveRow]:
    """Every RUNNING or CANCELLING generation of `namespace` (at most `limit`, least recently updated first).

    These are bounded by the workers' total concurrency, however long the QUEUED backlog: recovery
    reads them all, so a backlog of QUEUED rows cannot hide one.
    """
    stmt = (
        select(Generation.id, Generation.status, Generation.lease, Generation.attempt, Generation.updated_at)
        .where(Generation.namespace == namespace, Generation.status.in_((Status.RUNNING, Status.CANCELLING)))
        .order_by(Generation.updated_at)
        .limit(limit)
    )
    return [ActiveRow(*row) for row in (await session.execute(stmt)).all()]


async def stale_queued(
    session: AsyncSession, *, namespace: str, updated_before: datetime, limit: int = 200
) -> list[ActiveRow]:
    """QUEUED generations of `namespace` unchanged since `updated_before`, oldest first (at most `limit`)."""
    stmt = (
        select(Generation.id, Generation.status, Generation.lease, Generation.attempt, Generation.updated_at)
        .where(
            Generation.namespace == namespace,
            Generation.status == Status.QUEUED,
            Generation.updated_at < updated_before,
        )
        .order_by(Generation.updated_at)
        .limit(limit)
    )
    return [ActiveRow(*row) for row in (await session.execute(stmt)).all()]
