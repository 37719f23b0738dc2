"""db.write_statements: each write is one statement, built once, alike on a Core connection and in a session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.engine import create_engine, create_session_factory, single_statement
from db.states import Status
from db.transitions import Change, create_generation, now, record_image, transition
from db.write_statements import WriteShape, write_statement
from settings import Settings
from tests.db.rows import image_columns, new_generation, new_user
from tests.sql import recorded_statements


@pytest.mark.parametrize("autocommit", [True, False], ids=["on the driver", "in a transaction"])
async def test_each_write_is_one_statement(session_factory: async_sessionmaker[AsyncSession], autocommit: bool) -> None:
    async with single_statement(session_factory) if autocommit else session_factory() as session:
        owner = await new_user(session)
        with recorded_statements(session_factory.kw["bind"]) as statements:
            change, _ = await create_generation(
                session, owner_id=owner.id, template="t", params={}, prompt="p", seed=1, max_active=5
            )
            gid = change.generation.id
            await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
            await record_image(
                session, generation_id=gid, lease="job", image=image_columns(0), payload={}, then=Status.SUCCEEDED
            )
            await session.commit()
            await asyncio.sleep(0)  # the driver's query log reports on the next turn of the loop
    assert [s.split("(", 1)[0].split()[0] for s in statements if not s.startswith(("BEGIN", "COMMIT"))] == [
        "WITH"
    ] * 3, statements


async def test_a_statement_alone_and_a_transaction_give_the_same_rows(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The hot statements run on a Core connection in autocommit sessions, through the ORM session in a
    transaction: the same types come back either way."""
    async with session_factory() as session:
        owner = await new_user(session)
    changes: list[list[Change]] = []
    for autocommit in (True, False):
        async with single_statement(session_factory) if autocommit else session_factory() as session:
            params = {"prompt": "p", "n": [1, 2.5, None]}
            created, _ = await create_generation(
                session, owner_id=owner.id, template="t", params=params, prompt="p", seed=1, max_active=5
            )
            running = await transition(
                session, generation_id=created.generation.id, to=Status.RUNNING, values={"lease": "job", "percent": 0.5}
            )
            await session.commit()
        changes.append([created, running])
    columns = ("owner_id", "template", "params", "status", "phase", "percent", "attempt", "last_seq", "lease")
    for on_driver, in_session in zip(*changes, strict=True):
        for column in columns:
            a, b = getattr(on_driver.generation, column), getattr(in_session.generation, column)
            assert (a, type(a)) == (b, type(b)), column
        assert on_driver.generation.created_at.tzinfo is not None
        assert (on_driver.event.seq, on_driver.event.kind, on_driver.event.payload) == (
            in_session.event.seq,
            in_session.event.kind,
            in_session.event.payload,
        )
    running = changes[0][1]
    assert running.generation.status is Status.RUNNING and running.generation.percent == 0.5


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


async def test_a_claim_that_does_not_wait_for_the_flush_leaves_its_connection_waiting(settings: Settings) -> None:
    """`wait_for_flush=False` turns synchronous_commit off for the claim's own transaction: PostgreSQL
    evaluates the setting (the plan reads its CTE), and the pooled connection's next statement waits
    for its flush again."""
    engine = create_engine(settings, pool_size=1)
    try:
        sessions = create_session_factory(engine)
        async with sessions() as session:
            owner = await new_user(session)
            change, _ = await new_generation(session, owner)
        async with single_statement(sessions) as session:
            running = await transition(
                session,
                generation_id=change.generation.id,
                to=Status.RUNNING,
                values={"lease": "job"},
                wait_for_flush=False,
            )
            assert running.generation.status is Status.RUNNING
            assert (await session.execute(text("show synchronous_commit"))).scalar_one() == "on"
        claim = write_statement(
            WriteShape(
                changes=(("status", False), ("lease", False)),
                events=(None,),
                sources=("QUEUED",),
                lease=False,
                owner=False,
                image=None,
                wait_for_flush=False,
            )
        )
        async with sessions() as session:
            change, _ = await new_generation(session, owner)
        params = {"b_gid": change.generation.id, "b_lease": None, "b_owner": None, "b_now": now()} | {
            "v_status": Status.RUNNING,
            "v_lease": "job",
        }

        def explain(*args: Any) -> tuple[str, Any]:
            return "explain (analyze, format json) " + args[2], args[3]

        async with engine.connect() as conn:
            event.listen(conn.sync_connection, "before_cursor_execute", explain, retval=True)
            result = await conn.execute(claim, params)
            ((explained,),) = [tuple(row) for row in result.fetchall()]
            (plan,) = explained  # one statement: a list of one plan
            await conn.rollback()
        scans = [node for node in _plan_nodes(plan["Plan"]) if node.get("CTE Name") == "no_wait"]
        assert [scan["Actual Loops"] for scan in scans] == [1]
    finally:
        await engine.dispose()
