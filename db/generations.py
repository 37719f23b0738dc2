"""Generation rows: create, read, page, and every status change through one guarded UPDATE.

Every durable change bumps `generations.last_seq` and inserts the event with
that number in the same transaction; the row lock taken by the UPDATE orders
concurrent writers, so sequence numbers are gap-free and commit in order.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.events import EventKind
from db.models import Generation, GenerationEvent, Image
from db.states import ACTIVE, IllegalTransition, Phase, Status, allowed_sources

__all__ = [
    "Change",
    "GenerationNotFound",
    "Page",
    "StaleLease",
    "append_event",
    "count_active",
    "create_generation",
    "decode_cursor",
    "delete_generation",
    "encode_cursor",
    "get_generation",
    "last_seq",
    "list_generations",
    "now",
    "queue_positions",
    "status_payload",
    "take_over",
    "transition",
    "update_progress",
]


class GenerationNotFound(LookupError):
    pass


class StaleLease(Exception):
    """The caller's job execution no longer owns the generation (another one took over)."""


@dataclass(frozen=True, slots=True)
class Change:
    """A committed-to-be durable change: the row after it and the event that records it."""

    generation: Generation
    event: GenerationEvent


def now() -> datetime:
    return datetime.now(UTC)


def status_payload(generation: Generation) -> dict[str, Any]:
    error = None
    if generation.error_code is not None:
        error = {
            "code": generation.error_code,
            "message": generation.error_message,
            "retryable": generation.error_retryable,
            "node": generation.error_node,
        }
    return {"status": generation.status.value, "attempt": generation.attempt, "error": error}


async def create_generation(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    template: str,
    params: dict[str, Any],
    prompt: str,
    seed: int,
    idempotency_key: str | None = None,
) -> tuple[Change, bool]:
    """Insert a QUEUED generation with its first event; `(change, created)`.

    With an idempotency key already used by this owner, nothing is inserted and
    the existing generation comes back with `created=False`.
    """
    generation_id = uuid.uuid4()
    values = {
        "id": generation_id,
        "owner_id": owner_id,
        "template": template,
        "params": params,
        "prompt": prompt,
        "seed": seed,
        "idempotency_key": idempotency_key,
        "status": Status.QUEUED,
        "phase": Phase.WAITING,
        "percent": 0.0,
        "attempt": 1,
        "last_seq": 1,
    }
    stmt = pg_insert(Generation).values(**values)
    if idempotency_key is not None:
        stmt = stmt.on_conflict_do_nothing(constraint="uq_generation_idempotency")
    generation = (await session.execute(stmt.returning(Generation))).scalar_one_or_none()
    if generation is None:
        existing = (
            await session.execute(
                select(Generation).where(Generation.owner_id == owner_id, Generation.idempotency_key == idempotency_key)
            )
        ).scalar_one()
        first = await session.get(GenerationEvent, (existing.id, 1))
        assert first is not None
        return Change(existing, first), False
    event = (
        await session.execute(
            insert(GenerationEvent)
            .values(
                generation_id=generation_id,
                seq=1,
                kind=EventKind.STATUS.value,
                payload=status_payload(generation),
            )
            .returning(GenerationEvent)
        )
    ).scalar_one()
    return Change(generation, event), True


async def get_generation(
    session: AsyncSession, *, generation_id: uuid.UUID, owner_id: uuid.UUID | None = None
) -> Generation | None:
    """One generation; with `owner_id`, only if that user owns it (None = admin view)."""
    stmt = select(Generation).where(Generation.id == generation_id)
    if owner_id is not None:
        stmt = stmt.where(Generation.owner_id == owner_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def last_seq(session: AsyncSession, *, generation_id: uuid.UUID) -> int | None:
    """The sequence number of the generation's last durable event; None when it does not exist."""
    stmt = select(Generation.last_seq).where(Generation.id == generation_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def transition(
    session: AsyncSession,
    *,
    generation_id: uuid.UUID,
    to: Status,
    lease: str | None = None,
    values: dict[str, Any] | None = None,
) -> Change:
    """Move a generation to `to`, recording a STATUS event; the caller commits.

    Raises IllegalTransition when the current status cannot reach `to` (this is
    how a late write after CANCELLED is refused), StaleLease when `lease` is
    given and no longer owns the row, GenerationNotFound when it is gone.
    """
    changes: dict[str, Any] = dict(values or {})
    changes["status"] = to
    if to.is_terminal:
        changes.setdefault("finished_at", now())
        changes.setdefault("phase", Phase.DONE)
        changes.setdefault("queue_position", None)
        changes.setdefault("lease", None)
    stmt = (
        update(Generation)
        .where(Generation.id == generation_id, Generation.status.in_(allowed_sources(to)))
        .values(last_seq=Generation.last_seq + 1, updated_at=now(), **changes)
        .returning(Generation)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    if lease is not None:
        stmt = stmt.where(Generation.lease == lease)
    generation = (await session.execute(stmt)).scalar_one_or_none()
    if generation is None:
        raise await _refusal(session, generation_id=generation_id, to=to, lease=lease)
    event = await _insert_event(
        session, generation=generation, kind=EventKind.STATUS, payload=status_payload(generation)
    )
    return Change(generation, event)


async def append_event(
    session: AsyncSession,
    *,
    generation_id: uuid.UUID,
    kind: EventKind,
    payload: dict[str, Any],
    lease: str,
) -> Change:
    """Record a durable non-status event (an image) from the job that owns the generation."""
    stmt = (
        update(Generation)
        .where(
            Generation.id == generation_id,
            Generation.lease == lease,
            Generation.status == Status.RUNNING,
        )
        .values(last_seq=Generation.last_seq + 1, updated_at=now())
        .returning(Generation)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    generation = (await session.execute(stmt)).scalar_one_or_none()
    if generation is None:
        raise await _refusal(session, generation_id=generation_id, to=Status.RUNNING, lease=lease)
    event = await _insert_event(session, generation=generation, kind=kind, payload=payload)
    return Change(generation, event)


async def _insert_event(
    session: AsyncSession, *, generation: Generation, kind: EventKind, payload: dict[str, Any]
) -> GenerationEvent:
    return (
        await session.execute(
            insert(GenerationEvent)
            .values(generation_id=generation.id, seq=generation.last_seq, kind=kind.value, payload=payload)
            .returning(GenerationEvent)
        )
    ).scalar_one()


async def _refusal(session: AsyncSession, *, generation_id: uuid.UUID, to: Status, lease: str | None) -> Exception:
    row = (
        await session.execute(select(Generation.status, Generation.lease).where(Generation.id == generation_id))
    ).one_or_none()
    if row is None:
        return GenerationNotFound(str(generation_id))
    current, current_lease = row
    if lease is not None and current_lease != lease and current in ACTIVE:
        return StaleLease(f"generation {generation_id} is owned by {current_lease}, not {lease}")
    return IllegalTransition(current, to)


async def take_over(
    session: AsyncSession, *, generation_id: uuid.UUID, old_lease: str | None, new_lease: str
) -> Generation | None:
    """Move an active generation's lease from a dead job to a new one; None if someone was faster."""
    stmt = (
        update(Generation)
        .where(
            Generation.id == generation_id,
            Generation.status.in_((Status.RUNNING, Status.CANCELLING)),
            Generation.lease.is_(None) if old_lease is None else Generation.lease == old_lease,
        )
        .values(lease=new_lease, updated_at=now())
        .returning(Generation)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def update_progress(
    session: AsyncSession, *, generation_id: uuid.UUID, lease: str, values: dict[str, Any]
) -> bool:
    """Coalesced progress columns (not in the event log); False once the job lost the generation."""
    result = await session.execute(
        update(Generation)
        .where(
            Generation.id == generation_id,
            Generation.lease == lease,
            Generation.status == Status.RUNNING,
        )
        .values(**values)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return bool(getattr(result, "rowcount", 0))


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


async def count_active(session: AsyncSession, *, owner_id: uuid.UUID) -> int:
    stmt = select(func.count()).where(Generation.owner_id == owner_id, Generation.status.in_(ACTIVE))
    return int((await session.execute(stmt)).scalar_one())


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[Generation]
    has_next: bool
    has_previous: bool


def encode_cursor(generation: Generation) -> str:
    raw = f"{generation.created_at.isoformat()}|{generation.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raise ValueError for anything that is not a cursor we issued."""
    try:
        created, _, ident = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed cursor {cursor!r}") from exc


async def list_generations(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID | None,
    first: int,
    after: str | None = None,
    statuses: Sequence[Status] = (),
    search: str | None = None,
) -> Page:
    """Newest first, keyset-paginated on (created_at, id)."""
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


async def delete_generation(session: AsyncSession, *, generation_id: uuid.UUID) -> list[str]:
    """Delete a generation with its images and events; the content hashes it held."""
    hashes = list(
        (await session.execute(select(Image.content_hash).where(Image.generation_id == generation_id))).scalars()
    )
    await session.execute(delete(Generation).where(Generation.id == generation_id))
    return hashes
