from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.events import EventKind, events_after
from db.generations import (
    GenerationNotFound,
    StaleLease,
    append_event,
    create_generation,
    decode_cursor,
    delete_generation,
    get_generation,
    list_generations,
    transition,
    update_progress,
)
from db.images import add_image, images_for_generations
from db.models import User
from db.states import IllegalTransition, Phase, Status
from db.users import create_token, ensure_user, user_by_token


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
