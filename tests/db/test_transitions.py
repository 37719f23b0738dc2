"""db.transitions: guarded writes, their refusals and gap-free sequence numbers."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.engine import single_statement
from db.events import events_after
from db.generation_reads import get_generation
from db.images import images_for_generations
from db.states import IllegalTransition, Phase, Status
from db.transitions import (
    ActiveLimitReached,
    GenerationNotFound,
    Placement,
    StaleLease,
    create_generation,
    delete_generation,
    record_image,
    transition,
    update_progress,
)
from tests.db.locks import blocked_by
from tests.db.rows import image_columns, new_generation, new_image, new_user


async def test_create_records_first_event(session: AsyncSession) -> None:
    owner = await new_user(session)
    change, created = await new_generation(session, owner)
    assert created
    assert change.generation.status is Status.QUEUED
    assert change.event.seq == 1
    assert change.event.payload["status"] == "QUEUED"
    events = await events_after(session, generation_id=change.generation.id, after_seq=0)
    assert [e.seq for e in events] == [1]


async def test_idempotency_key_returns_the_same_generation(session: AsyncSession) -> None:
    owner = await new_user(session)
    first, created_first = await new_generation(session, owner, key="k1")
    again, created_again = await new_generation(session, owner, key="k1")
    assert created_first and not created_again
    assert again.generation.id == first.generation.id
    other_owner = await new_user(session)
    theirs, created_theirs = await new_generation(session, other_owner, key="k1")
    assert created_theirs and theirs.generation.id != first.generation.id


async def test_active_limit_is_checked_in_the_insert(session: AsyncSession) -> None:
    owner = await new_user(session)
    for _ in range(2):
        await create_generation(session, owner_id=owner.id, template="t", params={}, prompt="p", seed=1, max_active=2)
    with pytest.raises(ActiveLimitReached):
        await create_generation(session, owner_id=owner.id, template="t", params={}, prompt="p", seed=1, max_active=2)
    await session.rollback()


async def test_transitions_are_guarded_and_sequenced(session: AsyncSession) -> None:
    owner = await new_user(session)
    change, _ = await new_generation(session, owner)
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
    (image_change,) = await record_image(
        session, generation_id=gid, lease="job-a", image=image_columns(0), payload={"index": 0}
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
    owner = await new_user(session)
    change, _ = await new_generation(session, owner)
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
        owner = await new_user(session)
        change, _ = await new_generation(session, owner)
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


async def test_status_events_carry_the_payload_of_the_row_they_record(session: AsyncSession) -> None:
    owner = await new_user(session)
    change, _ = await new_generation(session, owner)
    assert change.event.payload == {"status": "QUEUED", "attempt": 1, "error": None}
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
    assert (failed.event.payload["status"], failed.event.payload["attempt"]) == ("FAILED", 1)
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


async def test_narrowed_sources_and_owner_guard(session: AsyncSession) -> None:
    owner, stranger = await new_user(session), await new_user(session)
    owner_id, stranger_id = owner.id, stranger.id  # a rollback expires the ORM objects
    change, _ = await new_generation(session, owner)
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
    owner = await new_user(session)
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
    owner = await new_user(session)
    change, _ = await new_generation(session, owner)
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


async def test_record_image_is_one_statement_with_its_events(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with single_statement(session_factory) as session:
        owner = await new_user(session)
        change, _ = await new_generation(session, owner)
        gid = change.generation.id
        await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})

        first = await record_image(
            session, generation_id=gid, lease="job", image=image_columns(0), payload={"index": 0}
        )
        assert [(c.event.seq, c.event.kind) for c in first] == [(3, "IMAGE")]
        assert await record_image(session, generation_id=gid, lease="job", image=image_columns(0), payload={}) == []

        with pytest.raises(StaleLease):
            await record_image(session, generation_id=gid, lease="other", image=image_columns(1), payload={})
        assert [i.index for i in (await images_for_generations(session, generation_ids=[gid]))[gid]] == [0]

        image, done = await record_image(
            session,
            generation_id=gid,
            lease="job",
            image=image_columns(1),
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


async def test_last_image_and_success_are_refused_together(session: AsyncSession) -> None:
    """The last image with SUCCEEDED: refused as one (nothing inserted) for another lease or once done."""
    owner = await new_user(session)
    change, _ = await new_generation(session, owner)
    gid = change.generation.id
    await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
    await session.commit()
    with pytest.raises(StaleLease):
        await record_image(
            session, generation_id=gid, lease="other", image=image_columns(0), payload={}, then=Status.SUCCEEDED
        )
    await session.rollback()
    image, done = await record_image(
        session,
        generation_id=gid,
        lease="job",
        image=image_columns(0),
        payload={"index": 0},
        then=Status.SUCCEEDED,
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
        await record_image(
            session, generation_id=gid, lease="job", image=image_columns(1), payload={}, then=Status.SUCCEEDED
        )
    await session.rollback()
    assert [i.index for i in (await images_for_generations(session, generation_ids=[gid]))[gid]] == [0]


async def test_record_image_after_a_cancel_inserts_nothing(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with single_statement(session_factory) as session:
        owner = await new_user(session)
        change, _ = await new_generation(session, owner)
        gid = change.generation.id
        await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
        await transition(session, generation_id=gid, to=Status.CANCELLING)
        with pytest.raises(IllegalTransition) as refused:
            await record_image(session, generation_id=gid, lease="job", image=image_columns(0), payload={})
        assert refused.value.current is Status.CANCELLING
        assert (await images_for_generations(session, generation_ids=[gid]))[gid] == []
        assert [e.seq for e in await events_after(session, generation_id=gid, after_seq=0)] == [1, 2, 3]


async def test_record_image_waits_for_a_concurrent_cancel_and_then_refuses(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with single_statement(session_factory) as session:
        owner = await new_user(session)
        change, _ = await new_generation(session, owner)
        gid = change.generation.id
        await transition(session, generation_id=gid, to=Status.RUNNING, values={"lease": "job"})
    async with session_factory() as canceller:
        await transition(canceller, generation_id=gid, to=Status.CANCELLING)  # holds the row lock
        holder = (await canceller.execute(text("select pg_backend_pid()"))).scalar_one()
        async with single_statement(session_factory) as worker:
            recording = asyncio.create_task(
                record_image(worker, generation_id=gid, lease="job", image=image_columns(0), payload={})
            )
            await blocked_by(session_factory, holder)
            assert not recording.done()
            await canceller.commit()
            with pytest.raises(IllegalTransition):
                await recording
    async with session_factory() as session:
        assert (await images_for_generations(session, generation_ids=[gid]))[gid] == []
        assert [e.seq for e in await events_after(session, generation_id=gid, after_seq=0)] == [1, 2, 3]


async def test_delete_returns_the_content_hashes_it_held(session: AsyncSession) -> None:
    owner = await new_user(session)
    change, _ = await new_generation(session, owner)
    gid = change.generation.id
    for index in range(2):
        assert await new_image(session, gid, index) is not None
    hashes = await delete_generation(session, generation_id=gid)
    await session.commit()
    assert sorted(hashes) == [f"{0:064x}", f"{1:064x}"]
    assert await get_generation(session, generation_id=gid) is None
