"""Claiming a generation: QUEUED → RUNNING under a fresh lease, or taking over one whose worker died.

Every later write of the run is guarded by the lease, so a job that lost ownership cannot change the
generation (jobs/worker/run.py turns such a refusal into `Lost`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from db import generation_reads, transitions
from db.engine import single_statement
from db.models import Generation
from db.states import IllegalTransition, Phase, Status
from jobs.backends import NoBackend
from jobs.bus import BusEvent
from jobs.worker.runtime import Runtime
from jobs.worker.submit import prompt_id_for

__all__ = ["Claimed", "claim", "new_lease"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claimed:
    generation: Generation  # the row after the claim
    lease: str
    # Taken over from a job that died: its prompt may be on the recorded backend already.
    resumed: bool
    # The RUNNING event of a fresh claim, committed; published with the run's first flush.
    event: BusEvent | None = None


def new_lease(runtime: Runtime) -> str:
    """A lease names its worker first: recovery tells from the worker's heartbeat whether it is alive."""
    return f"{runtime.worker_id}/{uuid.uuid4().hex[:12]}"


def lease_worker(lease: str) -> str:
    return lease.split("/", 1)[0]


async def claim(runtime: Runtime, generation_id: uuid.UUID, lease: str, attempt: int | None) -> Claimed | None:
    """Take ownership: QUEUED → RUNNING, or take over from a dead worker. None = nothing to do.

    The common case is one autocommit statement and no SELECT: the guarded UPDATE with its event,
    which also records where the prompt will go (backend and prompt id, see `_placement`): a re-run
    after a crash looks there before submitting. Without a placement (no healthy backend now, or a
    job for another attempt), the submit records it before the prompt goes out.
    """
    async with single_statement(runtime.sessions) as session:
        try:
            change = await transitions.transition(
                session,
                generation_id=generation_id,
                to=Status.RUNNING,
                values={
                    "lease": lease,
                    "phase": Phase.SUBMITTING,
                    "started_at": transitions.UnlessSet(transitions.now()),
                },
                placement=_placement(runtime, generation_id, attempt),
                wait_for_flush=False,  # a lost claim is repaired by a re-run (see `transition`)
            )
        except transitions.GenerationNotFound:
            return None
        except IllegalTransition as exc:
            if exc.current is not Status.RUNNING and exc.current is not Status.CANCELLING:
                return None  # finished, or cancelled or claimed by another job meanwhile
            await session.rollback()
            return await _take_over(runtime, session, generation_id, lease)
    generation = change.generation
    return Claimed(
        generation, lease, resumed=False, event=BusEvent.from_row(change.event, owner_id=generation.owner_id)
    )


def _placement(runtime: Runtime, generation_id: uuid.UUID, attempt: int | None) -> transitions.Placement | None:
    if attempt is None:
        return None
    try:
        by_checkpoint, default = runtime.backends.choices()
    except NoBackend:
        return None  # the run retries or fails it
    return transitions.Placement(
        attempt=attempt,
        prompt_id=prompt_id_for(generation_id, attempt),
        backends={checkpoint: backend.url for checkpoint, backend in by_checkpoint.items()},
        default=default.url,
    )


async def _take_over(runtime: Runtime, session: AsyncSession, generation_id: uuid.UUID, lease: str) -> Claimed | None:
    """An active generation whose job died: take its lease over if its worker is gone."""
    generation = await generation_reads.get_generation(session, generation_id=generation_id)
    if generation is None or generation.status not in (Status.RUNNING, Status.CANCELLING):
        return None
    old_lease = generation.lease  # read now: take_over refreshes `generation` with the new lease
    if old_lease is not None and await _owner_alive(runtime, old_lease):
        return None
    taken = await transitions.take_over(session, generation_id=generation_id, old_lease=old_lease, new_lease=lease)
    await session.commit()
    if taken is None:
        return None
    log.info("generation %s recovered from lease %s (now %s)", generation_id, old_lease, lease)
    return Claimed(taken, lease, resumed=True)


async def _owner_alive(runtime: Runtime, lease: str) -> bool:
    return bool(await runtime.redis.exists(runtime.keys.worker(lease_worker(lease))))
