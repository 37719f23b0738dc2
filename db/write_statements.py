"""The statements behind `db.transitions`: each guarded write is one statement (CTEs), built once per shape.

Building a CTE statement costs more than running it, so each shape is built once and cached, with
every value a bound parameter; SQLAlchemy then compiles it once (its compiled cache) and asyncpg
prepares it once per connection (its statement cache). Hot writes are Core statements on the tables
(no ORM bulk-update machinery); rows come back as detached model instances.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Select,
    String,
    Table,
    Update,
    bindparam,
    case,
    func,
    insert,
    literal,
    literal_column,
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
from db.payloads import status_payload_sql
from db.quotas import active_count
from db.states import ACTIVE, Phase, Status

__all__ = [
    "WriteShape",
    "create_statement",
    "event_from",
    "generation_from",
    "generation_table",
    "progress_statement",
    "run_statement",
    "write_statement",
]

generation_table = cast(Table, Generation.__table__)
event_table = cast(Table, GenerationEvent.__table__)
image_table = cast(Table, Image.__table__)
_GENERATION_KEYS = tuple(c.key for c in generation_table.c)
_EVENT_KEYS = tuple(c.key for c in event_table.c)


async def run_statement(session: AsyncSession, statement: Select[Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """A statement built once, run with its values bound: rows by column key."""
    bind = session.bind
    if isinstance(bind, AsyncEngine) and bind.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        # A statement alone (`db.engine.single_statement`): on a Core connection of the session's own
        # autocommit engine, without the ORM session's bookkeeping around it.
        async with bind.connect() as connection:
            result = await connection.execute(statement, params)
            return [dict(row) for row in result.mappings()]
    result = await session.execute(statement, params)
    return [dict(row) for row in result.mappings()]


def generation_from(row: Mapping[str, Any]) -> Generation:
    return Generation(**{k: row[k] for k in _GENERATION_KEYS})


def event_from(row: Mapping[str, Any]) -> GenerationEvent:
    return GenerationEvent(**{k: row[f"event_{k}"] for k in _EVENT_KEYS})


@functools.cache
def create_statement(idempotent: bool, limited: bool) -> Select[Any]:
    """Insert a QUEUED generation and its first STATUS event; one row with `active_before` (the owner's
    active count) and, unless refused, the new generation's and event's columns."""
    generations = generation_table
    fixed = {"status": Status.QUEUED, "phase": Phase.WAITING, "percent": 0.0, "attempt": 1, "last_seq": 1}
    bound = (
        "id", "owner_id", "template", "template_version_id", "params", "prompt", "seed", "idempotency_key", "namespace"
    )  # fmt: skip
    # With a limit, counted under the owner's lock (db.quotas): concurrent creates cannot all pass it.
    owner = bindparam("owner_id", type_=generations.c.owner_id.type)
    if limited:
        active = select(active_count(owner).label("n")).cte("active")
    else:
        active = select(func.count().label("n")).where(generations.c.owner_id == owner, status_in(ACTIVE)).cte("active")
    row = select(
        *(bindparam(k, type_=generations.c[k].type).label(k) for k in bound),
        *(literal(v, generations.c[k].type).label(k) for k, v in fixed.items()),
    )
    if limited:
        row = row.where(select(active.c.n).scalar_subquery() < bindparam("max_active", type_=Integer))
    insert_generation = pg_insert(generations).from_select([*bound, *fixed], row)
    if idempotent:
        insert_generation = insert_generation.on_conflict_do_nothing(constraint="uq_generation_idempotency")
    inserted = insert_generation.returning(*generations.c).cte("ins")
    event = (
        insert(event_table)
        .from_select(
            ["generation_id", "seq", "kind", "payload"],
            select(inserted.c.id, inserted.c.last_seq, _event_kind(EventKind.STATUS), status_payload_sql(inserted)),
        )
        .returning(*event_table.c)
        .cte("ev")
    )
    return select(active.c.n.label("active_before"), *inserted.c, *_event_columns(event)).select_from(
        active.outerjoin(inserted, true()).outerjoin(event, true())
    )


@dataclass(frozen=True, slots=True)
class WriteShape:
    """What tells one guarded write statement from another (its values are bound parameters)."""

    changes: tuple[tuple[str, bool], ...]  # (column, only where NULL)
    events: tuple[str | None, ...]  # kind of each event with a bound payload; None = STATUS of the row
    sources: tuple[str, ...]
    lease: bool
    owner: bool
    image: tuple[str, ...] | None
    placement: bool = False
    wait_for_flush: bool = True


@functools.lru_cache(maxsize=256)
def write_statement(shape: WriteShape) -> Select[Any]:
    """One guarded UPDATE that takes `len(shape.events)` sequence numbers and inserts those events.

    Parameters: `b_gid`, `b_lease`, `b_owner`, `b_now`; `v_<column>` for each change; `p_<index>` for
    each event with a payload; `i_<column>` for the image row; `pl_*` for the placement.
    """
    generations = generation_table
    where: list[Any] = [generations.c.id == bindparam("b_gid", type_=generations.c.id.type)]
    statuses = [Status(value) for value in shape.sources]
    status_guard = status_in(statuses)
    if shape.image is None:
        where.append(status_guard)
        if shape.lease:
            where.append(generations.c.lease == bindparam("b_lease", type_=generations.c.lease.type))
    else:
        owned = (
            select(generations.c.id)
            .where(
                generations.c.id == bindparam("b_gid", type_=generations.c.id.type),
                generations.c.lease == bindparam("b_lease", type_=generations.c.lease.type),
                status_guard,
            )
            .with_for_update()
            .cte("owned")
        )
        image_row = select(
            owned.c.id.label("generation_id"),
            *(bindparam(f"i_{key}", type_=image_table.c[key].type).label(key) for key in shape.image),
        )
        inserted = (
            pg_insert(image_table)
            # Columns the caller leaves out take the table's server defaults: SQLAlchemy fills its Python-side
            # defaults in only for a top-level INSERT, and this one is a CTE of a SELECT (they would be NULLs).
            .from_select(["generation_id", *shape.image], image_row, include_defaults=False)
            .on_conflict_do_nothing(constraint="uq_image_index")
            .returning(image_table.c.generation_id)
            .cte("img")
        )
        where.append(generations.c.id.in_(select(inserted.c.generation_id)))
    if shape.owner:
        where.append(generations.c.owner_id == bindparam("b_owner", type_=generations.c.owner_id.type))
    count = len(shape.events)
    values: dict[str, Any] = {}
    for key, unless_set in shape.changes:
        value = bindparam(f"v_{key}", type_=generations.c[key].type)
        values[key] = func.coalesce(generations.c[key], value) if unless_set else value
    if shape.placement:
        same_attempt = generations.c.attempt == bindparam("pl_attempt", type_=Integer)
        checkpoint = func.coalesce(generations.c.params.op("->>")(literal("checkpoint", String)), literal("", String))
        backend = func.coalesce(
            bindparam("pl_backends", type_=JSONB).op("->>", return_type=String)(checkpoint),
            bindparam("pl_default", type_=String),
        )
        values["backend_url"] = case((same_attempt, backend), else_=generations.c.backend_url)
        values["prompt_id"] = case(
            (same_attempt, bindparam("pl_prompt", type_=generations.c.prompt_id.type)), else_=generations.c.prompt_id
        )
    updated = (
        update(generations)
        .where(*where)
        .values(
            last_seq=generations.c.last_seq + count,
            updated_at=bindparam("b_now", type_=generations.c.updated_at.type),
            **values,
        )
        .returning(*generations.c)
        .cte("upd")
    )
    rows = [
        select(
            updated.c.id,
            updated.c.last_seq - (count - 1 - index),
            _event_kind(EventKind.STATUS if kind is None else EventKind(kind)),
            status_payload_sql(updated) if kind is None else bindparam(f"p_{index}", type_=JSONB),
        )
        for index, kind in enumerate(shape.events)
    ]
    event = (
        insert(event_table)
        .from_select(["generation_id", "seq", "kind", "payload"], rows[0] if count == 1 else union_all(*rows))
        .returning(*event_table.c)
        .cte("ev")
    )
    joined = updated.join(event, true())
    if not shape.wait_for_flush:
        # set_config(..., is_local => true) lasts until this statement's own (autocommit) transaction
        # ends, and its commit reads the setting: only this commit skips waiting for the flush. Its
        # CTE is volatile, so PostgreSQL evaluates it where the join reads it, before the commit.
        no_wait = select(
            func.set_config(literal("synchronous_commit", String), literal("off", String), true()).label("off")
        ).cte("no_wait")
        joined = joined.join(no_wait, true())
    return select(*updated.c, *_event_columns(event)).select_from(joined).order_by(event.c.seq)


@functools.lru_cache(maxsize=64)
def progress_statement(keys: tuple[str, ...]) -> Update:
    """Set the `keys` columns (`v_<key>`) of a RUNNING generation owned by `b_lease` (`b_gid`)."""
    generations = generation_table
    return (
        update(generations)
        .where(
            generations.c.id == bindparam("b_gid", type_=generations.c.id.type),
            generations.c.lease == bindparam("b_lease", type_=generations.c.lease.type),
            generations.c.status == Status.RUNNING,
        )
        .values({key: bindparam(f"v_{key}", type_=generations.c[key].type) for key in keys})
    )


def status_in(statuses: Collection[Status]) -> Any:
    """The status guard of a statement built once: its statuses are fixed parameters, where an `IN`
    of a list would be an expanding parameter, its SQL rendered again on every execution."""
    ordered = sorted(statuses, key=lambda status: status.value)
    if len(ordered) == 1:
        return generation_table.c.status == ordered[0]
    return generation_table.c.status.in_([literal(status, generation_table.c.status.type) for status in ordered])


def _event_kind(kind: EventKind) -> Any:
    return literal_column(f"'{kind.value}'", String)


def _event_columns(event: Any) -> list[Any]:
    return [event.c[k].label(f"event_{k}") for k in _EVENT_KEYS]
