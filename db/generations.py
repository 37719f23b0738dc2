"""Generation rows: create, read, page, and every status change through one guarded UPDATE.

Every durable change bumps `generations.last_seq` and inserts the event with
that number in the same transaction; the row lock taken by the UPDATE orders
concurrent writers, so sequence numbers are gap-free and commit in order.
"""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Select,
    String,
    Table,
    Update,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db.events import EventKind
from db.models import Generation, GenerationEvent, Image
from db.quotas import active_count
from db.states import ACTIVE, IllegalTransition, Phase, Status, allowed_sources
from settings import DEFAULT_NAMESPACE

__all__ = [
    "ActiveLimitReached",
    "ActiveRow",
    "Change",
    "GenerationNotFound",
    "Page",
    "Placement",
    "StaleLease",
    "UnlessSet",
    "active_leases",
    "append_event",
    "append_event_then",
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
    "record_image",
    "release_lease",
    "stale_queued",
    "status_payload",
    "take_over",
    "transition",
    "update_progress",
]


# Hot writes are Core statements on the tables (no ORM bulk-update machinery); rows come back as
# detached model instances.
_G = cast(Table, Generation.__table__)
_E = cast(Table, GenerationEvent.__table__)
_I = cast(Table, Image.__table__)
_GENERATION_KEYS = tuple(c.key for c in _G.c)
_EVENT_KEYS = tuple(c.key for c in _E.c)


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
            "input": generation.error_input,
        }
    return {"status": generation.status.value, "attempt": generation.attempt, "error": error}


async def _rows(session: AsyncSession, statement: Select[Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """A statement built once (see `_create_statement`), run with its values bound: rows by column key.

    SQLAlchemy compiles each built statement once (its compiled cache) and asyncpg prepares it once
    per connection (its statement cache), so a run costs the binding and the round trip.
    """
    bind = session.bind
    if isinstance(bind, AsyncEngine) and bind.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        # A statement alone (`db.engine.single_statement`): on a Core connection of the session's own
        # autocommit engine, without the ORM session's bookkeeping around it.
        async with bind.connect() as connection:
            result = await connection.execute(statement, params)
            return [dict(row) for row in result.mappings()]
    result = await session.execute(statement, params)
    return [dict(row) for row in result.mappings()]


class ActiveLimitReached(Exception):
    """The owner already has `max_active` queued or running generations."""


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
        "params": params,
        "prompt": prompt,
        "seed": seed,
        "idempotency_key": idempotency_key,
        "max_active": max_active,
        "namespace": namespace,
    }
    (row,) = await _rows(session, _create_statement(idempotency_key is not None, max_active is not None), values)
    if row["id"] is not None:
        return Change(_generation_from(row), _event_from(row)), True
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


@functools.cache
def _create_statement(idempotent: bool, limited: bool) -> Select[Any]:
    """Built once per shape (building CTE statements costs more than running them); values bound."""
    fixed = {"status": Status.QUEUED, "phase": Phase.WAITING, "percent": 0.0, "attempt": 1, "last_seq": 1}
    bound = ("id", "owner_id", "template", "params", "prompt", "seed", "idempotency_key", "namespace")
    # With a limit, counted under the owner's lock (db.quotas): concurrent creates cannot all pass it.
    owner = bindparam("owner_id", type_=_G.c.owner_id.type)
    if limited:
        active = select(active_count(owner).label("n")).cte("active")
    else:
        active = select(func.count().label("n")).where(_G.c.owner_id == owner, _status_in(ACTIVE)).cte("active")
    row = select(
        *(bindparam(k, type_=_G.c[k].type).label(k) for k in bound),
        *(literal(v, _G.c[k].type).label(k) for k, v in fixed.items()),
    )
    if limited:
        row = row.where(select(active.c.n).scalar_subquery() < bindparam("max_active", type_=Integer))
    ins_stmt = pg_insert(_G).from_select([*bound, *fixed], row)
    if idempotent:
        ins_stmt = ins_stmt.on_conflict_do_nothing(constraint="uq_generation_idempotency")
    ins = ins_stmt.returning(*_G.c).cte("ins")
    event = (
        insert(_E)
        .from_select(
            ["generation_id", "seq", "kind", "payload"],
            select(ins.c.id, ins.c.last_seq, _kind(EventKind.STATUS), _status_payload_sql(ins)),
        )
        .returning(*_E.c)
        .cte("ev")
    )
    return select(active.c.n.label("active_before"), *ins.c, *_event_columns(event)).select_from(
        active.outerjoin(ins, true()).outerjoin(event, true())
    )


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
    generation, events = await _write_or_refuse(
        session,
        to=to,
        generation_id=generation_id,
        sources=allowed,
        lease=lease,
        owner_id=owner_id,
        changes=_status_changes(to, values),
        events=[(EventKind.STATUS, None)],
        placement=placement,
        wait_for_flush=wait_for_flush,
    )
    return Change(generation, events[0])


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


async def append_event(
    session: AsyncSession,
    *,
    generation_id: uuid.UUID,
    kind: EventKind,
    payload: dict[str, Any],
    lease: str,
) -> Change:
    """Record a durable non-status event (an image) from the job that owns the generation."""
    generation, events = await _write_or_refuse(
        session,
        to=Status.RUNNING,
        generation_id=generation_id,
        sources=_RUNNING,
        lease=lease,
        owner_id=None,
        changes={},
        events=[(kind, payload)],
    )
    return Change(generation, events[0])


async def append_event_then(
    session: AsyncSession,
    *,
    generation_id: uuid.UUID,
    kind: EventKind,
    payload: dict[str, Any],
    lease: str,
    to: Status,
    values: dict[str, Any] | None = None,
) -> tuple[Change, Change]:
    """`append_event`, then `transition` from RUNNING to `to`, as one statement (the last image and
    SUCCEEDED): the same guards, refusals and gap-free sequence numbers as the two calls."""
    if Status.RUNNING not in allowed_sources(to):
        raise IllegalTransition(Status.RUNNING, to)
    generation, events = await _write_or_refuse(
        session,
        to=to,
        generation_id=generation_id,
        sources=_RUNNING,
        lease=lease,
        owner_id=None,
        changes=_status_changes(to, values),
        events=[(kind, payload), (EventKind.STATUS, None)],
    )
    return Change(generation, events[0]), Change(generation, events[1])


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
    """Insert an image row and its IMAGE event (with `then`, also the status change, as
    `append_event_then`), all in one statement: atomic without a transaction around it.

    `image` holds the images columns except the generation id. [] when that index was recorded
    already (by an earlier run of this job). Refusals raise as `append_event` does, and then
    nothing is inserted: the generation row is locked first and the image row depends on it.
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
    current = (await session.execute(select(_G.c.status, _G.c.lease).where(_G.c.id == generation_id))).one_or_none()
    if current is not None and current.status is Status.RUNNING and current.lease == lease:
        return []  # ours and running: the image row was there already
    raise await _refusal(session, generation_id=generation_id, to=then or Status.RUNNING, lease=lease)


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


_WAIT_COLUMNS = ("phase_reason", "retry_at", "deadline_at")
_ERROR_COLUMNS = ("error_code", "error_message", "error_retryable", "error_node", "error_input")


def _status_in(statuses: Collection[Status]) -> Any:
    """The status guard of a statement built once: its statuses are fixed parameters, where an `IN`
    of a list would be an expanding parameter, its SQL rendered again on every execution."""
    ordered = sorted(statuses, key=lambda status: status.value)
    if len(ordered) == 1:
        return _G.c.status == ordered[0]
    return _G.c.status.in_([literal(status, _G.c.status.type) for status in ordered])


def _kind(kind: EventKind) -> Any:
    return literal_column(f"'{kind.value}'", String)


def _status_payload_sql(row: Any) -> Any:
    """`status_payload()` computed by PostgreSQL from the row a CTE returned."""

    def key(name: str) -> Any:
        return literal_column(f"'{name}'", String)

    error = case(
        (row.c.error_code.is_(None), null()),
        else_=func.jsonb_build_object(
            key("code"),
            row.c.error_code,
            key("message"),
            row.c.error_message,
            key("retryable"),
            row.c.error_retryable,
            key("node"),
            row.c.error_node,
            key("input"),
            row.c.error_input,
        ),
    )
    return func.jsonb_build_object(key("status"), row.c.status, key("attempt"), row.c.attempt, key("error"), error)


def _event_columns(event: Any) -> list[Any]:
    return [event.c[k].label(f"event_{k}") for k in _EVENT_KEYS]


def _generation_from(row: Mapping[str, Any]) -> Generation:
    return Generation(**{k: row[k] for k in _GENERATION_KEYS})


def _event_from(row: Mapping[str, Any]) -> GenerationEvent:
    return GenerationEvent(**{k: row[f"event_{k}"] for k in _EVENT_KEYS})


_RUNNING = frozenset({Status.RUNNING})


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
    one statement (CTEs). A payload of None is the STATUS payload of the updated row. With
    `image`, the statement first locks the generation (if owned by `lease` and RUNNING), inserts
    the image row, and updates only if it did (not when that image index exists already).

    The UPDATE's row lock orders concurrent writers: sequence numbers stay gap-free and in order.
    """
    if placement is not None and ("backend_url" in changes or "prompt_id" in changes):
        raise ValueError("backend_url and prompt_id come from the placement")
    shape = _WriteShape(
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
    result = await _rows(session, _write_statement(shape), params)
    if not result:
        return None, []
    return _generation_from(result[0]), [_event_from(row) for row in result]


@dataclass(frozen=True, slots=True)
class UnlessSet:
    """A value for `transition(values=...)` written only where the column is NULL (`started_at`)."""

    value: Any


@dataclass(frozen=True, slots=True)
class _WriteShape:
    changes: tuple[tuple[str, bool], ...]  # (column, only where NULL)
    events: tuple[str | None, ...]  # kind of each event with a bound payload; None = STATUS of the row
    sources: tuple[str, ...]
    lease: bool
    owner: bool
    image: tuple[str, ...] | None
    placement: bool = False
    wait_for_flush: bool = True


@functools.lru_cache(maxsize=256)
def _write_statement(shape: _WriteShape) -> Select[Any]:
    """Built once per shape (building CTE statements costs more than running them); values bound."""
    where: list[Any] = [_G.c.id == bindparam("b_gid", type_=_G.c.id.type)]
    statuses = [Status(value) for value in shape.sources]
    status_guard = _status_in(statuses)
    if shape.image is None:
        where.append(status_guard)
        if shape.lease:
            where.append(_G.c.lease == bindparam("b_lease", type_=_G.c.lease.type))
    else:
        owned = (
            select(_G.c.id)
            .where(
                _G.c.id == bindparam("b_gid", type_=_G.c.id.type),
                _G.c.lease == bindparam("b_lease", type_=_G.c.lease.type),
                status_guard,
            )
            .with_for_update()
            .cte("owned")
        )
        image_row = select(
            owned.c.id.label("generation_id"),
            *(bindparam(f"i_{key}", type_=_I.c[key].type).label(key) for key in shape.image),
        )
        inserted = (
            pg_insert(_I)
            .from_select(["generation_id", *shape.image], image_row)
            .on_conflict_do_nothing(constraint="uq_image_index")
            .returning(_I.c.generation_id)
            .cte("img")
        )
        where.append(_G.c.id.in_(select(inserted.c.generation_id)))
    if shape.owner:
        where.append(_G.c.owner_id == bindparam("b_owner", type_=_G.c.owner_id.type))
    count = len(shape.events)
    values: dict[str, Any] = {}
    for key, unless_set in shape.changes:
        value = bindparam(f"v_{key}", type_=_G.c[key].type)
        values[key] = func.coalesce(_G.c[key], value) if unless_set else value
    if shape.placement:
        same_attempt = _G.c.attempt == bindparam("pl_attempt", type_=Integer)
        checkpoint = func.coalesce(_G.c.params.op("->>")(literal("checkpoint", String)), literal("", String))
        backend = func.coalesce(
            bindparam("pl_backends", type_=JSONB).op("->>", return_type=String)(checkpoint),
            bindparam("pl_default", type_=String),
        )
        values["backend_url"] = case((same_attempt, backend), else_=_G.c.backend_url)
        values["prompt_id"] = case(
            (same_attempt, bindparam("pl_prompt", type_=_G.c.prompt_id.type)), else_=_G.c.prompt_id
        )
    upd = (
        update(_G)
        .where(*where)
        .values(last_seq=_G.c.last_seq + count, updated_at=bindparam("b_now", type_=_G.c.updated_at.type), **values)
        .returning(*_G.c)
        .cte("upd")
    )
    rows = [
        select(
            upd.c.id,
            upd.c.last_seq - (count - 1 - index),
            _kind(EventKind.STATUS if kind is None else EventKind(kind)),
            _status_payload_sql(upd) if kind is None else bindparam(f"p_{index}", type_=JSONB),
        )
        for index, kind in enumerate(shape.events)
    ]
    event = (
        insert(_E)
        .from_select(["generation_id", "seq", "kind", "payload"], rows[0] if count == 1 else union_all(*rows))
        .returning(*_E.c)
        .cte("ev")
    )
    joined = upd.join(event, true())
    if not shape.wait_for_flush:
        # set_config(..., is_local => true) lasts until this statement's own (autocommit) transaction
        # ends, and its commit reads the setting: only this commit skips waiting for the flush. Its
        # CTE is volatile, so PostgreSQL evaluates it where the join reads it, before the commit.
        no_wait = select(
            func.set_config(literal("synchronous_commit", String), literal("off", String), true()).label("off")
        ).cte("no_wait")
        joined = joined.join(no_wait, true())
    return select(*upd.c, *_event_columns(event)).select_from(joined).order_by(event.c.seq)


async def _write_or_refuse(
    session: AsyncSession,
    *,
    to: Status,
    generation_id: uuid.UUID,
    sources: frozenset[Status],
    lease: str | None,
    owner_id: uuid.UUID | None,
    changes: dict[str, Any],
    events: list[tuple[EventKind, dict[str, Any] | None]],
    placement: Placement | None = None,
    wait_for_flush: bool = True,
) -> tuple[Generation, list[GenerationEvent]]:
    """`_write`, raising the typed refusal (as a move to `to`) when its guard matched no row."""
    generation, rows = await _write(
        session,
        generation_id=generation_id,
        sources=sources,
        lease=lease,
        owner_id=owner_id,
        changes=changes,
        events=events,
        placement=placement,
        wait_for_flush=wait_for_flush,
    )
    if generation is None:
        raise await _refusal(session, generation_id=generation_id, to=to, lease=lease, owner_id=owner_id)
    return generation, rows


async def _refusal(
    session: AsyncSession,
    *,
    generation_id: uuid.UUID,
    to: Status,
    lease: str | None,
    owner_id: uuid.UUID | None = None,
) -> Exception:
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
    params = {"b_gid": generation_id, "b_lease": lease, **{f"v_{key}": value for key, value in values.items()}}
    result = await session.execute(_progress_statement(tuple(values)), params)
    return bool(getattr(result, "rowcount", 0))


@functools.lru_cache(maxsize=64)
def _progress_statement(keys: tuple[str, ...]) -> Update:
    return (
        update(_G)
        .where(
            _G.c.id == bindparam("b_gid", type_=_G.c.id.type),
            _G.c.lease == bindparam("b_lease", type_=_G.c.lease.type),
            _G.c.status == Status.RUNNING,
        )
        .values({key: bindparam(f"v_{key}", type_=_G.c[key].type) for key in keys})
    )


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
    reads them all, where it once read the 200 oldest active rows (a backlog of QUEUED ones hid them).
    """
    stmt = (
        select(_G.c.id, _G.c.status, _G.c.lease, _G.c.attempt, _G.c.updated_at)
        .where(_G.c.namespace == namespace, _G.c.status.in_((Status.RUNNING, Status.CANCELLING)))
        .order_by(_G.c.updated_at)
        .limit(limit)
    )
    return [ActiveRow(*row) for row in (await session.execute(stmt)).all()]


async def stale_queued(
    session: AsyncSession, *, namespace: str, updated_before: datetime, limit: int = 200
) -> list[ActiveRow]:
    """QUEUED generations of `namespace` unchanged since `updated_before`, oldest first (at most `limit`)."""
    stmt = (
        select(_G.c.id, _G.c.status, _G.c.lease, _G.c.attempt, _G.c.updated_at)
        .where(_G.c.namespace == namespace, _G.c.status == Status.QUEUED, _G.c.updated_at < updated_before)
        .order_by(_G.c.updated_at)
        .limit(limit)
    )
    return [ActiveRow(*row) for row in (await session.execute(stmt)).all()]


async def release_lease(session: AsyncSession, *, generation_id: uuid.UUID, lease: str) -> datetime | None:
    """Take `lease` off an active generation whose job no longer runs (recovery); the row's new
    `updated_at` (when it was released), or None if it moved on meanwhile.

    The next job for the generation then takes it over (`take_over` with `old_lease=None`) and resumes
    its prompt; a late write from the old job matches no row (its lease is gone).
    """
    stmt = (
        update(_G)
        .where(
            _G.c.id == generation_id,
            _G.c.lease == lease,
            _G.c.status.in_((Status.RUNNING, Status.CANCELLING)),
        )
        .values(lease=None, updated_at=now())
        .returning(_G.c.updated_at)
    )
    released: datetime | None = (await session.execute(stmt)).scalar_one_or_none()
    return released
