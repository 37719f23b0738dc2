"""db.quotas: counting an owner's active generations takes the owner's lock until the transaction ends, so a
second count waits for the first transaction and then sees what it committed; other owners do not wait.

(That 60 concurrent creates with a limit of 20 admit exactly 20 is tests/graph/test_quotas.py.)
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.quotas import lock_and_count_active
from db.states import Status
from db.transitions import create_generation, transition
from tests.db.locks import blocked_by
from tests.db.rows import new_generation, new_user


async def test_only_active_generations_count(session: AsyncSession) -> None:
    owner = await new_user(session)
    assert await lock_and_count_active(session, owner_id=owner.id) == 0
    await session.commit()
    gids = [(await new_generation(session, owner, prompt=f"p{n}"))[0].generation.id for n in range(3)]
    await transition(session, generation_id=gids[0], to=Status.RUNNING, values={"lease": "job"})
    await transition(session, generation_id=gids[1], to=Status.CANCELLED)
    await session.commit()
    assert await lock_and_count_active(session, owner_id=owner.id) == 2  # QUEUED and RUNNING
    await session.commit()


async def test_a_second_count_waits_for_the_first_transaction_and_sees_its_generation(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as setup:
        owner, stranger = await new_user(setup), await new_user(setup)
    async with session_factory() as first, session_factory() as second, session_factory() as other:
        holder = (await first.execute(text("select pg_backend_pid()"))).scalar_one()
        assert await lock_and_count_active(first, owner_id=owner.id) == 0
        counting = asyncio.ensure_future(lock_and_count_active(second, owner_id=owner.id))
        await blocked_by(session_factory, holder)
        assert not counting.done()
        assert await lock_and_count_active(other, owner_id=stranger.id) == 0, "another owner does not wait"
        await other.commit()
        await create_generation(first, owner_id=owner.id, template="txt2img", params={}, prompt="p", seed=1)
        await first.commit()  # the lock goes with the transaction
        assert await asyncio.wait_for(counting, 10) == 1, "counted after the first transaction, seeing its insert"
        await second.commit()
