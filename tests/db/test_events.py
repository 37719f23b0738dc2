"""db.events: a generation's log read after a sequence number, and one owner's (or everyone's) events of a
namespace after a (created_at, generation_id, seq) position, in that order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.events import EventPosition, database_now, events_after, owner_events_after
from db.models import GenerationEvent
from db.states import Status
from db.transitions import create_generation, transition
from tests.db.rows import new_user

START: EventPosition = (datetime(2000, 1, 1, tzinfo=UTC), uuid.UUID(int=0), 0)


async def _generation(session: AsyncSession, owner: uuid.UUID, namespace: str) -> uuid.UUID:
    change, _ = await create_generation(
        session, owner_id=owner, template="txt2img", params={}, prompt="p", seed=1, namespace=namespace
    )
    await session.commit()
    return change.generation.id


def _position(event: GenerationEvent) -> EventPosition:
    assert event.created_at is not None
    return (event.created_at, event.generation_id, event.seq)


async def test_a_generations_log_after_a_sequence_number(session: AsyncSession) -> None:
    owner = await new_user(session)
    gid = await _generation(session, owner.id, f"ev-{uuid.uuid4().hex[:8]}")
    await transition(session, generation_id=gid, to=Status.CANCELLED)
    await transition(session, generation_id=gid, to=Status.QUEUED)  # a retry
    await session.commit()
    assert [e.seq for e in await events_after(session, generation_id=gid, after_seq=0)] == [1, 2, 3]
    assert [e.seq for e in await events_after(session, generation_id=gid, after_seq=1)] == [2, 3]
    assert [e.seq for e in await events_after(session, generation_id=gid, after_seq=0, limit=2)] == [1, 2]
    assert await events_after(session, generation_id=gid, after_seq=3) == []
    assert await events_after(session, generation_id=uuid.uuid4(), after_seq=0) == []


async def test_an_owners_events_of_a_namespace_in_log_order_after_a_position(session: AsyncSession) -> None:
    namespace, elsewhere = f"ev-{uuid.uuid4().hex[:8]}", f"ev-{uuid.uuid4().hex[:8]}"
    alice, bob = (await new_user(session)).id, (await new_user(session)).id
    first = await _generation(session, alice, namespace)
    bobs = await _generation(session, bob, namespace)
    second = await _generation(session, alice, namespace)
    await _generation(session, alice, elsewhere)
    # Two events of one transaction share their created_at: the generation id and seq order them.
    await transition(session, generation_id=first, to=Status.CANCELLED)
    await transition(session, generation_id=second, to=Status.CANCELLED)
    await session.commit()

    mine = await owner_events_after(session, namespace=namespace, owner_id=alice, after=START)
    assert {owner for _, owner in mine} == {alice}
    positions = [_position(event) for event, _ in mine]
    assert positions == sorted(positions), "in (created_at, generation_id, seq) order"
    assert sorted((e.generation_id, e.seq) for e, _ in mine) == sorted(
        [(first, 1), (second, 1), (first, 2), (second, 2)]
    )
    together = [p for p in positions if p[0] == positions[-1][0]]
    assert [p[1] for p in together] == sorted([first, second]), "the one transaction's two events"

    everyone = await owner_events_after(session, namespace=namespace, owner_id=None, after=START)
    assert {(e.generation_id, owner) for e, owner in everyone} == {(first, alice), (second, alice), (bobs, bob)}

    rest = await owner_events_after(session, namespace=namespace, owner_id=alice, after=positions[1])
    assert [_position(e) for e, _ in rest] == positions[2:], "strictly after the position given"
    page = await owner_events_after(session, namespace=namespace, owner_id=alice, after=START, limit=3)
    assert [_position(e) for e, _ in page] == positions[:3]
    assert await owner_events_after(session, namespace=namespace, owner_id=alice, after=positions[-1]) == []


async def test_event_times_are_the_databases_clock(session: AsyncSession) -> None:
    owner = await new_user(session)
    before = await database_now(session)
    await session.commit()  # now() is the transaction's start: a new one for the event
    gid = await _generation(session, owner.id, f"ev-{uuid.uuid4().hex[:8]}")
    (event,) = await events_after(session, generation_id=gid, after_seq=0)
    assert event.created_at is not None and before <= event.created_at <= await database_now(session)
