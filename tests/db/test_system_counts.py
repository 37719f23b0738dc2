"""db.system_counts: generations by status now, and by outcome since a moment."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db.states import Status
from db.system_counts import generation_counts
from db.transitions import now, transition
from tests.db.rows import new_generation, new_user


async def test_counts_by_status_and_outcome(session: AsyncSession) -> None:
    start = now()
    before = await generation_counts(session, finished_since=start)
    owner = await new_user(session)
    queued, _ = await new_generation(session, owner)
    running, _ = await new_generation(session, owner)
    failed, _ = await new_generation(session, owner)
    await transition(session, generation_id=running.generation.id, to=Status.RUNNING, values={"lease": "job"})
    await transition(session, generation_id=failed.generation.id, to=Status.RUNNING, values={"lease": "job"})
    await transition(session, generation_id=failed.generation.id, to=Status.FAILED, lease="job")
    await session.commit()
    after = await generation_counts(session, finished_since=start)
    assert (after.queued - before.queued, after.running - before.running) == (1, 1)
    assert (after.failed, after.succeeded, after.cancelled) == (before.failed + 1, before.succeeded, before.cancelled)
    assert after.oldest_queued_at is not None and after.oldest_queued_at <= queued.generation.created_at
    later = await generation_counts(session, finished_since=now() + timedelta(hours=1))
    assert (later.failed, later.succeeded, later.cancelled) == (0, 0, 0)
