"""db.generation_reads: pages newest first, filtered."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from db.cursors import encode_cursor
from db.generation_reads import by_idempotency_key, list_generations
from db.states import Status
from tests.db.rows import new_generation, new_user


async def test_pagination_newest_first_with_filters(session: AsyncSession) -> None:
    owner = await new_user(session)
    ids = []
    for i in range(7):
        change, _ = await new_generation(session, owner, prompt=f"lighthouse {i}" if i % 2 else f"forest {i}")
        ids.append(change.generation.id)
    page1 = await list_generations(session, owner_id=owner.id, first=3)
    assert [g.id for g in page1.rows] == ids[::-1][:3]
    assert page1.has_next
    page2 = await list_generations(session, owner_id=owner.id, first=3, after=encode_cursor(page1.rows[-1]))
    assert [g.id for g in page2.rows] == ids[::-1][3:6]
    search = await list_generations(session, owner_id=owner.id, first=10, search="LIGHTHOUSE")
    assert len(search.rows) == 3
    wildcard = await list_generations(session, owner_id=owner.id, first=10, search="%")
    assert wildcard.rows == []
    queued = await list_generations(session, owner_id=owner.id, first=10, statuses=[Status.SUCCEEDED])
    assert queued.rows == []


async def test_an_idempotency_key_finds_only_its_owners_generation(session: AsyncSession) -> None:
    owner, stranger = await new_user(session), await new_user(session)
    change, _ = await new_generation(session, owner, key="k1")
    found = await by_idempotency_key(session, owner_id=owner.id, idempotency_key="k1")
    assert found is not None and found.id == change.generation.id
    assert await by_idempotency_key(session, owner_id=stranger.id, idempotency_key="k1") is None
    assert await by_idempotency_key(session, owner_id=owner.id, idempotency_key="k2") is None
