from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.engine import create_engine, create_session_factory, single_statement
from db.events import EventKind, events_after
from db.generations import (
    ActiveLimitReached,
    Change,
    GenerationNotFound,
    Placement,
    StaleLease,
    _write_statement,
    _WriteShape,
    append_event,
    append_event_then,
    create_generation,
    decode_cursor,
    delete_generation,
    get_generation,
    list_generations,
    now,
    record_image,
    status_payload,
    transition,
    update_progress,
)
from db.images import add_image, images_for_generations
from db.models import User
from db.states import IllegalTransition, Phase, Status
from db.users import create_token, ensure_user, user_by_token
from settings import Settings
from tests.sql import recorded_statements


async def _user(session: AsyncSession) -> User:
    user = await ensure_user(session, name=f"u-{uuid.uuid4().hex[:8]}")
    await session.commit()
    return user


async def _generation(session: AsyncSession, owner: User, *, prompt: str = "a cat", key: str | None = None):  # type: ignore[no-untyped-def]
    change, created = await create_generation(
        session,
        owner_id=owner.id,
        template="txt2img",
        params={"prompt": prompt},
        prompt=prompt,
        seed=7,
        idempotency_key=key,
    )
    await session.commit()
    return change, created


async def test_create_records_first_event(session: AsyncSession) -> None:
    owner = await _user(session)
    change, created = await _generation(session, owner)
    assert created
    assert change.generation.status is Status.QUEUED
    assert change.event.seq == 1
    assert change.event.payload["status"] == "QUEUED"
    events = await events_after(session, generation_id=change.generation.id, after_seq=0)
    assert [e.seq for e in events] == [1]


async def test_idempotency_key_returns_the_same_generation(session: AsyncSession) -> None:
    owner = await _user(session)
    first, created_first = await _generation(session, owner, key="k1")
    again, created_again = await _generation(session, owner, key="k1")
    assert created_first and not created_again
    assert again.generation.id == first.generation.id
    other_owner = await _user(session)
    theirs, created_theirs = await _generation(session, other_owner, key="k1")
    assert created_theirs and theirs.generation.id != first.generation.id


async def test_transitions_are_guarded_and_sequenced(session: AsyncSession) -> None:
    owner = await _user(session)
    change, _ = await _generation(session, owner)
    gid = change.generation.id
    running = await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job-a"})
    await session.commit()
    assert running.event.seq == 2
    with pytest.raises(IllegalTransition) as excinfo:
        await transition(session, generation_id=gid, to=Status.RUNNING)
    assert excinfo.value.current is Status.RUNNING
    await session.rollback()
    with pytest.raises(StaleLease):
        await transition(session, generation_id=gid, to=Status.SUCCEEDED, lease="job-b")
    await session.rollback()
    image_change = await append_event(
        session, generation_id=gid, kind=EventKind.IMAGE, payload={"index": 0}, lease="job-a"
    )
    done = await transition(session, generation_id=gid, to=Status.SUCCEEDED, lease="job-a")
    await session.commit()
    assert (image_change.event.seq, done.event.seq) == (3, 4)
    assert done.generation.finished_at is not None
    assert done.generation.phase is Phase.DONE
    assert not await update_progress(session, generation_id=gid, lease="job-a", values={"percent": 10.0})
    with pytest.raises(GenerationNotFound):
        await transition(session, generation_id=uuid.uuid4(), to=Status.RUNNING)
    await session.rollback()


async def test_late_progress_after_cancel_cannot_move_backwards(session: AsyncSession) -> None:
    owner = await _user(session)
    change, _ = await _generation(session, owner)
    gid = change.generation.id
    await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
    await transition(session, generation_id=gid, to=Status.CANCELLED)
    await session.commit()
    assert not await update_progress(session, generation_id=gid, lease="job", values={"percent": 50.0})
    with pytest.raises(IllegalTransition):
        await transition(session, generation_id=gid, to=Status.SUCCEEDED, lease="job")
    await session.rollback()
    row = await get_generation(session, generation_id=gid)
    assert row is not None and row.status is Status.CANCELLED and row.percent == 0.0


async def test_concurrent_writers_one_wins(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """A worker claiming and a user cancelling at the same moment: exactly one succeeds."""
    async with session_factory() as session:
        owner = await _user(session)
        change, _ = await _generation(session, owner)
    gid = change.generation.id

    async def attempt(target: Status) -> Status | None:
        async with session_factory() as s:
            try:
                await transition(s, generation_id=gid, to=target, values={"lease": "w"})
                await asyncio.sleep(0.05)  # hold the row lock so the other writer queues behind it
                await s.commit()
            except IllegalTransition:
                return None
            return target

    results = await asyncio.gather(attempt(Status.RUNNING), attempt(Status.CANCELLED))
    winners = [r for r in results if r is not None]
    async with session_factory() as s:
        row = await get_generation(s, generation_id=gid)
        events = await events_after(s, generation_id=gid, after_seq=0)
    assert row is not None
    # Either RUNNING then CANCELLED (both legal in that order) or only CANCELLED.
    assert row.status is Status.CANCELLED
    assert [e.seq for e in events] == list(range(1, len(winners) + 2))


async def test_pagination_newest_first_with_filters(session: AsyncSession) -> None:
    owner = await _user(session)
    ids = []
    for i in range(7):
        change, _ = await _generation(session, owner, prompt=f"lighthouse {i}" if i % 2 else f"forest {i}")
        ids.append(change.generation.id)
    page1 = await list_generations(session, owner_id=owner.id, first=3)
    assert [g.id for g in page1.rows] == ids[::-1][:3]
    assert page1.has_next
    from db.generations import encode_cursor

    page2 = await list_generations(session, owner_id=owner.id, first=3, after=encode_cursor(page1.rows[-1]))
    assert [g.id for g in page2.rows] == ids[::-1][3:6]
    search = await list_generations(session, owner_id=owner.id, first=10, search="LIGHTHOUSE")
    assert len(search.rows) == 3
    wildcard = await list_generations(session, owner_id=owner.id, first=10, search="%")
    assert wildcard.rows == []
    queued = await list_generations(session, owner_id=owner.id, first=10, statuses=[Status.SUCCEEDED])
    assert queued.rows == []
    with pytest.raises(ValueError, match="malformed cursor"):
        decode_cursor("not-a-cursor")


async def test_images_and_delete(session: AsyncSession) -> None:
    owner = await _user(session)
    change, _ = await _generation(session, owner)
    gid = change.generation.id
    for index in range(2):
        row = await add_image(
            session,
            generation_id=gid,
            index=index,
            content_hash=f"{index:064x}",
            mime="image/png",
            width=64,
            height=64,
            seed=7 + index,
            size_bytes=100,
            node_id="9",
        )
        assert row is not None
    duplicate = await add_image(
        session,
        generation_id=gid,
        index=0,
        content_hash="f" * 64,
        mime="image/png",
        width=64,
        height=64,
        seed=7,
        size_bytes=100,
        node_id="9",
    )
    assert duplicate is None
    by_generation = await images_for_generations(session, generation_ids=[gid, uuid.uuid4()])
    assert [i.index for i in by_generation[gid]] == [0, 1]
    hashes = await delete_generation(session, generation_id=gid)
    await session.commit()
    assert sorted(hashes) == [f"{0:064x}", f"{1:064x}"]
    assert await get_generation(session, generation_id=gid) is None


async def test_tokens_are_hashed(session: AsyncSession) -> None:
    owner = await _user(session)
    token = await create_token(session, user_id=owner.id, name="cli")
    await session.commit()
    found = await user_by_token(session, token=token)
    assert found is not None and found.id == owner.id
    assert await user_by_token(session, token=token + "x") is None
    from sqlalchemy import text

    stored = (await session.execute(text("select token_hash from api_tokens"))).scalars().all()
    assert token not in stored


async def test_status_events_carry_the_payload_of_the_row_they_record(session: AsyncSession) -> None:
    owner = await _user(session)
    change, _ = await _generation(session, owner)
    assert (
        change.event.payload
        == status_payload(change.generation)
        == {
            "status": "QUEUED",
            "attempt": 1,
            "error": None,
        }
    )
    gid = change.generation.id
    await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
    failed = await transition(
        session,
        generation_id=gid,
        to=Status.FAILED,
        lease="job",
        values={"error_code": "X", "error_message": "boom", "error_retryable": False, "error_node": None},
    )
    await session.commit()
    assert failed.event.payload == status_payload(failed.generation)
    assert failed.event.payload["error"] == {
        "code": "X",
        "message": "boom",
        "retryable": False,
        "node": None,
        "input": None,
    }
    stored = await events_after(session, generation_id=gid, after_seq=0)
    assert [(e.seq, e.kind, e.payload["status"]) for e in stored] == [
        (1, "STATUS", "QUEUED"),
        (2, "STATUS", "RUNNING"),
        (3, "STATUS", "FAILED"),
    ]
    assert failed.generation.last_seq == 3 and failed.generation.status is Status.FAILED


async def test_last_image_and_success_in_one_statement(session: AsyncSession) -> None:
    owner = await _user(session)
    change, _ = await _generation(session, owner)
    gid = change.generation.id
    await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
    await session.commit()
    with pytest.raises(StaleLease):
        await append_event_then(
            session, generation_id=gid, kind=EventKind.IMAGE, payload={"index": 0}, lease="other", to=Status.SUCCEEDED
        )
    await session.rollback()
    image, done = await append_event_then(
        session,
        generation_id=gid,
        kind=EventKind.IMAGE,
        payload={"index": 0},
        lease="job",
        to=Status.SUCCEEDED,
        values={"percent": 100.0},
    )
    await session.commit()
    assert (image.event.seq, image.event.kind, image.event.payload) == (3, "IMAGE", {"index": 0})
    assert (done.event.seq, done.event.payload["status"]) == (4, "SUCCEEDED")
    assert done.generation.status is Status.SUCCEEDED and done.generation.percent == 100.0
    assert done.generation.lease is None and done.generation.last_seq == 4
    stored = await events_after(session, generation_id=gid, after_seq=0)
    assert [(e.seq, e.kind) for e in stored] == [(1, "STATUS"), (2, "STATUS"), (3, "IMAGE"), (4, "STATUS")]
    with pytest.raises(IllegalTransition):
        await append_event_then(
            session, generation_id=gid, kind=EventKind.IMAGE, payload={"index": 1}, lease="job", to=Status.SUCCEEDED
        )
    await session.rollback()


async def test_narrowed_sources_and_owner_guard(session: AsyncSession) -> None:
    owner, stranger = await _user(session), await _user(session)
    owner_id, stranger_id = owner.id, stranger.id  # a rollback expires the ORM objects
    change, _ = await _generation(session, owner)
    gid = change.generation.id
    with pytest.raises(IllegalTransition) as refused:  # QUEUED may go to CANCELLED, but not when narrowed
        await transition(session, generation_id=gid, to=Status.CANCELLED, sources=[Status.RUNNING])
    assert refused.value.current is Status.QUEUED
    await session.rollback()
    with pytest.raises(GenerationNotFound):
        await transition(session, generation_id=gid, to=Status.CANCELLED, owner_id=stranger_id)
    await session.rollback()
    cancelled = await transition(session, generation_id=gid, to=Status.CANCELLED, owner_id=owner_id)
    await session.commit()
    assert cancelled.generation.status is Status.CANCELLED


async def test_a_claim_records_its_placement_by_checkpoint(session: AsyncSession) -> None:
    owner = await _user(session)
    backends = {"a.safetensors": "http://a", "": "http://plain"}
    claimed: dict[str, tuple[str | None, str | None]] = {}
    for checkpoint in ("a.safetensors", "b.safetensors", None):
        params = {"prompt": "p"} if checkpoint is None else {"prompt": "p", "checkpoint": checkpoint}
        change, _ = await create_generation(session, owner_id=owner.id, template="t", params=params, prompt="p", seed=1)
        running = await transition(
            session,
            generation_id=change.generation.id,
            to=Status.RUNNING,
            values={"lease": "job"},
            placement=Placement(attempt=1, prompt_id=f"prompt-{checkpoint}", backends=backends, default="http://b"),
        )
        claimed[str(checkpoint)] = (running.generation.backend_url, running.generation.prompt_id)
    await session.commit()
    assert claimed == {
        "a.safetensors": ("http://a", "prompt-a.safetensors"),
        "b.safetensors": ("http://b", "prompt-b.safetensors"),
        "None": ("http://plain", "prompt-None"),
    }


async def test_a_claim_for_another_attempt_leaves_the_placement_unset(session: AsyncSession) -> None:
    owner = await _user(session)
    change, _ = await _generation(session, owner)
    running = await transition(
        session,
        generation_id=change.generation.id,
        to=Status.RUNNING,
        values={"lease": "job"},
        placement=Placement(attempt=2, prompt_id="prompt-2", backends={}, default="http://b"),
    )
    await session.commit()
    assert running.generation.status is Status.RUNNING
    assert (running.generation.backend_url, running.generation.prompt_id) == (None, None)


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
            owner = await _user(session)
            change, _ = await _generation(session, owner)
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
        claim = _write_statement(
            _WriteShape(
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
            change, _ = await _generation(session, owner)
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


async def test_active_limit_is_checked_in_the_insert(session: AsyncSession) -> None:
    owner = await _user(session)
    for _ in range(2):
        await create_generation(session, owner_id=owner.id, template="t", params={}, prompt="p", seed=1, max_active=2)
    with pytest.raises(ActiveLimitReached):
        await create_generation(session, owner_id=owner.id, template="t", params={}, prompt="p", seed=1, max_active=2)
    await session.rollback()


@pytest.mark.parametrize("autocommit", [True, False], ids=["on the driver", "in a transaction"])
async def test_each_write_is_one_statement(session_factory: async_sessionmaker[AsyncSession], autocommit: bool) -> None:
    async with single_statement(session_factory) if autocommit else session_factory() as session:
        owner = await _user(session)
        with recorded_statements(session_factory.kw["bind"]) as statements:
            change, _ = await create_generation(
                session, owner_id=owner.id, template="t", params={}, prompt="p", seed=1, max_active=5
            )
            gid = change.generation.id
            await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
            await append_event_then(
                session, generation_id=gid, kind=EventKind.IMAGE, payload={}, lease="job", to=Status.SUCCEEDED
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
        owner = await _user(session)
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


def _image(index: int) -> dict[str, object]:
    return {
        "index": index,
        "content_hash": f"{index:064x}",
        "mime": "image/png",
        "width": 64,
        "height": 64,
        "seed": 7,
        "size_bytes": 100,
        "node_id": "",
    }


async def test_record_image_is_one_statement_with_its_events(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with single_statement(session_factory) as session:
        owner = await _user(session)
        change, _ = await _generation(session, owner)
        gid = change.generation.id
        await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})

        first = await record_image(session, generation_id=gid, lease="job", image=_image(0), payload={"index": 0})
        assert [(c.event.seq, c.event.kind) for c in first] == [(3, "IMAGE")]
        assert await record_image(session, generation_id=gid, lease="job", image=_image(0), payload={}) == []

        with pytest.raises(StaleLease):
            await record_image(session, generation_id=gid, lease="other", image=_image(1), payload={})
        assert [i.index for i in (await images_for_generations(session, generation_ids=[gid]))[gid]] == [0]

        image, done = await record_image(
            session,
            generation_id=gid,
            lease="job",
            image=_image(1),
            payload={"index": 1},
            then=Status.SUCCEEDED,
            values={"percent": 100.0},
        )
        assert (image.event.seq, image.event.kind, done.event.seq, done.event.payload["status"]) == (
            4,
            "IMAGE",
            5,
            "SUCCEEDED",
        )
        assert done.generation.status is Status.SUCCEEDED and done.generation.lease is None
        stored = await events_after(session, generation_id=gid, after_seq=0)
        assert [e.seq for e in stored] == [1, 2, 3, 4, 5]


async def test_record_image_after_a_cancel_inserts_nothing(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with single_statement(session_factory) as session:
        owner = await _user(session)
        change, _ = await _generation(session, owner)
        gid = change.generation.id
        await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
        await transition(session, generation_id=gid, to=Status.CANCELLING)
        with pytest.raises(IllegalTransition) as refused:
            await record_image(session, generation_id=gid, lease="job", image=_image(0), payload={})
        assert refused.value.current is Status.CANCELLING
        assert (await images_for_generations(session, generation_ids=[gid]))[gid] == []
        assert [e.seq for e in await events_after(session, generation_id=gid, after_seq=0)] == [1, 2, 3]


async def test_record_image_waits_for_a_concurrent_cancel_and_then_refuses(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with single_statement(session_factory) as session:
        owner = await _user(session)
        change, _ = await _generation(session, owner)
        gid = change.generation.id
        await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
    async with session_factory() as canceller:
        await transition(canceller, generation_id=gid, to=Status.CANCELLING)  # holds the row lock
        async with single_statement(session_factory) as worker:
            recording = asyncio.create_task(
                record_image(worker, generation_id=gid, lease="job", image=_image(0), payload={})
            )
            await asyncio.sleep(0.1)
            assert not recording.done()
            await canceller.commit()
            with pytest.raises(IllegalTransition):
                await recording
    async with session_factory() as session:
        assert (await images_for_generations(session, generation_ids=[gid]))[gid] == []
        assert [e.seq for e in await events_after(session, generation_id=gid, after_seq=0)] == [1, 2, 3]
