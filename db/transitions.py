"""Every change to a generation row: create, move between statuses through one guarded UPDATE, record
an image, take over or release a lease, coalesce progress, delete.

Every durable change bumps `generations.last_seq` and inserts the event with that number in the same
statement; the row lock taken by the UPDATE orders concurrent writers, so sequence numbers are
gap-free and commit in order. A write whose guard matches no row raises the typed refusal:
IllegalTransition, StaleLease or GenerationNotFound.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.events import EventKind
from db.models import Generation, GenerationEvent, Image
from db.states import ACTIVE, IllegalTransition, Phase, Status, allowed_sources
from db.write_statements import (
    WriteShape,
    create_statement,
    event_from,
    generation_from,
    generation_table,
    progress_statement,
    run_statement,
    write_statement,
)
from settings import DEFAULT_NAMESPACE

__all__ = [
    "ActiveLimitReached",
    "Change",
    "GenerationNotFound",
    "Placement",
    "StaleLease",
    "UnlessSet",
    "create_generation",
    "delete_generation",
    "now",
    "record_image",
    "release_lease",
    "take_over",
    "transition",
    "update_progress",
]


class GenerationNotFound(LookupError):
    pass


class StaleLease(Exception):
    """The caller's job execution no longer owns the generation (another one took over)."""


class ActiveLimitReached(Exception):
    """The owner already has `max_active` queued or running generations."""


@dataclass(frozen=True, slots=True)
class Change:
    """A committed-to-be durable change: the row after it and the event that records it."""

    generation: Generation
    event: GenerationEvent


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a claimed generation's prompt goes, decided by the statement that claims it.

    The backend depends on the row's `params` (its checkpoint), which the claimer has not read
    yet: `backends` maps a checkpoint name ("" for none) to the backend URL chosen for it, and
    every other checkpoint goes to `default`. Both `backend_url` and `prompt_id` are written only
    when the row's attempt is `attempt` (the one `prompt_id` was derived from); otherwise they
    keep their values and the caller records them separately.
    """

    attempt: int
    prompt_id: str
    backends: Mapping[str, str]
    default: str


@dataclass(frozen=True, slots=True)
class UnlessSet:
    """A value for `transition(values=...)` written only where the column is NULL (`started_at`)."""

    value: Any


def now() -> datetime:
    return datetime.now(UTC)


async def create_generation(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    template: str,
    params: dict[str, Any],
    prompt: str,
    seed: int,
    idempotency_key: str | None = None,
    max_active: int | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    template_version_id: uuid.UUID | None = None,
) -> tuple[Change, bool]:
    """Insert a QUEUED generation of `namespace` with its first event, in one statement; `(change, created)`.

    With `max_active`, nothing is inserted (ActiveLimitReached) when the owner already has that
    many active generations. With an idempotency key already used by this owner, nothing is
    inserted and the existing generation comes back with `created=False`.
    """
    values = {
        "id": uuid.uuid4(),
        "owner_id": owner_id,
        "template": template,
        "template_version_id": template_version_id,
        "params": params,
        "prompt": prompt,
        "seed": seed,
        "idempotency_key": idempotency_key,
        "max_active": max_active,
        "namespace": namespace,
    }
    statement = create_statement(idempotency_key is not None, max_active is not None)
    (row,) = await run_statement(session, statement, values)
    if row["id"] is not None:
        return Change(generation_from(row), event_from(row)), True
    if max_active is not None and row["active_before"] >= max_active:
        raise ActiveLimitReached(f"{row['active_before']} active generations")
    existing = (
        await session.execute(
            select(Generation).where(Generation.owner_id == owner_id, Generation.idempotency_key == idempotency_key)
        )
    ).scalar_one()
    first = await session.get(GenerationEvent, (existing.id, 1))
    assert first is not None
    return Change(existing, first), False


async def transition(
    session: AsyncSession,
    *,
    generation_id: uuid.UUID,
    to: Status,
    lease: str | None = None,
    values: dict[str, Any] | None = None,
    owner_id: uuid.UUID | None = None,
    sources: Collection[Status] | None = None,
    placement: Placement | None = None,
    wait_for_flush: bool = True,
) -> Change:
    """Move a generation to `to`, recording a STATUS event, in one statement; the caller commits.

    Raises IllegalTransition when the current status cannot reach `to` (this is
    how a late write after CANCELLED is refused), StaleLease when `lease` is
    given and no longer owns the row, GenerationNotFound when it is gone (or,
    with `owner_id`, not that user's). `sources` narrows the statuses the state
    machine allows to move from (the API cancels only a RUNNING one to CANCELLING).
    `placement` records where the prompt will go in the same statement (see Placement).

    With `wait_for_flush=False` the statement commits without waiting for PostgreSQL to flush it to
    disk (`synchronous_commit` off for this statement's own transaction, nowhere else): it is visible
    and ordered at once, and lost only if PostgreSQL itself crashes within its WAL writer's delay
    (0.6 s at most by default). Only for a change that a re-run repairs: the worker's claim (a lost
    claim leaves the generation QUEUED; its job stops at its next guarded write, recovery runs it
    again). Each terminal write waits, and makes every change committed before it durable too.
    """
    allowed = allowed_sources(to)
    if sources is not None:
        allowed = allowed & frozenset(sources)
    generation, events = await _write(
        session,
        generation_id=generation_id,
        sources=allowed,
        lease=lease,
        owner_id=owner_id,
        changes=_status_changes(to, values),
        events=[(EventKind.STATUS, None)],
        placement=placement,
        wait_for_flush=wait_for_flush,
    )
    if generation is None:
        raise await _refusal(session, generation_id=generation_id, to=to, lease=lease, owner_id=owner_id)
    return Change(generation, events[0])


async def record_image(
    session: AsyncSession,
    *,
    generation_id: uuid.UUID,
    lease: str,
    image: dict[str, Any],
    payload: dict[str, Any],
    then: Status | None = None,
    values: dict[str, Any] | None = None,
) -> list[Change]:
    """Insert an image row and its IMAGE event (with `then`, also the move from RUNNING to `then` and
    its STATUS event), all in one statement: atomic without a transaction around it.

    `image` holds the images columns except the generation id. [] when that index was recorded
    already (by an earlier run of this job). Refusals raise as `transition` does, and then nothing
    is inserted: the generation row is locked first and the image row depends on it.
    """
    events: list[tuple[EventKind, dict[str, Any] | None]] = [(EventKind.IMAGE, payload)]
    changes: dict[str, Any] = dict(values or {})
    if then is not None:
        if Status.RUNNING not in allowed_sources(then):
            raise IllegalTransition(Status.RUNNING, then)
        changes = _status_changes(then, values)
        events.append((EventKind.STATUS, None))
    generation, rows = await _write(
        session,
        generation_id=generation_id,
        sources=_RUNNING,
        lease=lease,
        owner_id=None,
        changes=changes,
        events=events,
        image={"id": uuid.uuid4(), **image},
    )
    if generation is not None:
        return [Change(generation, event) for event in rows]
    generations = generation_table
    current = (
        await session.execute(
            select(generations.c.status, generations.c.lease).where(generations.c.id == generation_id)
        )
    ).one_or_none()
    if current is not None and current.status is Status.RUNNING and current.lease == lease:
        return []  # ours and running: the image row was there already
    raise await _refusal(session, generation_id=generation_id, to=then or Status.RUNNING, lease=lease)


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


async def release_lease(session: AsyncSession, *, generation_id: uuid.UUID, lease: str) -> datetime | None:
    """Take `lease` off an active generation whose job no longer runs (recovery); the row's new
    `updated_at` (when it was released), or None if it moved on meanwhile.

    The next job for the generation then takes it over (`take_over` with `old_lease=None`) and resumes
    its prompt; a late write from the old job matches no row (its lease is gone).
    """
    generations = generation_table
    stmt = (
        update(generations)
        .where(
            generations.c.id == generation_id,
            generations.c.lease == lease,
            generations.c.status.in_((Status.RUNNING, Status.CANCELLING)),
        )
        .values(lease=None, updated_at=now())
        .returning(generations.c.updated_at)
    )
    released: datetime | None = (await session.execute(stmt)).scalar_one_or_none()
    return released


async def update_progress(
    session: AsyncSession, *, generation_id: uuid.UUID, lease: str, values: dict[str, Any]
) -> bool:
    """Coalesced progress columns (not in the event log); False once the job lost the generation."""
    params = {"b_gid": generation_id, "b_lease": lease, **{f"v_{key}": value for key, value in values.items()}}
    result = await session.execute(progress_statement(tuple(values)), params)
    return bool(getattr(result, "rowcount", 0))


async def delete_generation(session: AsyncSession, *, generation_id: uuid.UUID) -> list[str]:
    """Delete a generation with its images and events; the content hashes it held."""
    hashes = list(
        (await session.execute(select(Image.content_hash).where(Image.generation_id == generation_id))).scalars()
    )
    await session.execute(delete(Generation).where(Generation.id == generation_id))
    return hashes


_RUNNING = frozenset({Status.RUNNING})
_WAIT_COLUMNS = ("phase_reason", "retry_at", "deadline_at")
_ERROR_COLUMNS = ("error_code", "error_message", "error_retryable", "error_node", "error_input")


def _status_changes(to: Status, values: dict[str, Any] | None) -> dict[str, Any]:
    changes: dict[str, Any] = dict(values or {})
    changes["status"] = to
    if to.is_terminal:
        changes.setdefault("finished_at", now())
        changes.setdefault("phase", Phase.DONE)
        changes.setdefault("queue_position", None)
        changes.setdefault("lease", None)
    if to.is_terminal or to is Status.RUNNING:
        for column in _WAIT_COLUMNS:
            changes.setdefault(column, None)  # what a wait said ends with it
    if to is Status.SUCCEEDED or to is Status.CANCELLED:
        # An attempt's error belongs to that attempt: a generation that ends well shows none.
        for column in _ERROR_COLUMNS:
            changes.setdefault(column, None)
    return changes


async def _write(
    session: AsyncSession,
    *,
    generation_id: uuid.UUID,
    sources: frozenset[Status],
    lease: str | None,
    owner_id: uuid.UUID | None,
    changes: dict[str, Any],
    events: list[tuple[EventKind, dict[str, Any] | None]],
    image: dict[str, Any] | None = None,
    placement: Placement | None = None,
    wait_for_flush: bool = True,
) -> tuple[Generation | None, list[GenerationEvent]]:
    """One guarded UPDATE that takes `len(events)` sequence numbers and inserts those events, as
    one statement (`db.write_statements.write_statement`). A payload of None is the STATUS payload
    of the updated row. With `image`, the statement first locks the generation (if owned by `lease`
    and RUNNING), inserts the image row, and updates only if it did (not when that image index
    exists already). `(None, [])` when the guard matched no row.
    """
    if placement is not None and ("backend_url" in changes or "prompt_id" in changes):
        raise ValueError("backend_url and prompt_id come from the placement")
    shape = WriteShape(
        changes=tuple((key, isinstance(value, UnlessSet)) for key, value in changes.items()),
        events=tuple(kind.value if payload is not None else None for kind, payload in events),
        sources=tuple(sorted(status.value for status in sources)),
        lease=lease is not None,
        owner=owner_id is not None,
        image=None if image is None else tuple(image),
        placement=placement is not None,
        wait_for_flush=wait_for_flush,
    )
    params: dict[str, Any] = {"b_gid": generation_id, "b_lease": lease, "b_owner": owner_id, "b_now": now()}
    if placement is not None:
        params.update(
            pl_attempt=placement.attempt,
            pl_prompt=placement.prompt_id,
            pl_backends=dict(placement.backends),
            pl_default=placement.default,
        )
    for key, value in changes.items():
        params[f"v_{key}"] = value.value if isinstance(value, UnlessSet) else value
    for index, (_, payload) in enumerate(events):
        if payload is not None:
            params[f"p_{index}"] = payload
    for key, value in (image or {}).items():
        params[f"i_{key}"] = value
    result = await run_statement(session, write_statement(shape), params)
    if not result:
        return None, []
    return generation_from(result[0]), [event_from(row) for row in result]


async def _refusal(
    session: AsyncSession,
    *,
    generation_id: uuid.UUID,
    to: Status,
    lease: str | None,
    owner_id: uuid.UUID | None = None,
) -> Exception:
    """Why a guarded write to `to` matched no row, read after the fact."""
    stmt = select(Generation.status, Generation.lease).where(Generation.id == generation_id)
    if owner_id is not None:
        stmt = stmt.where(Generation.owner_id == owner_id)
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return GenerationNotFound(str(generation_id))
    current, current_lease = row
    if lease is not None and current_lease != lease and current in ACTIVE:
        return StaleLease(f"generation {generation_id} is owned by {current_lease}, not {lease}")
    return IllegalTransition(current, to)
