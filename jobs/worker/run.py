"""The generate job: run one generation on ComfyUI, exactly once, and relay everything it does.

A run is made of parts, each in a module of its own, composed here:
- claim (jobs/worker/claim.py): QUEUED → RUNNING under a fresh lease, or a takeover from a dead worker;
- submit (submit.py): the workflow built and sent, where it goes recorded first;
- follow (follow.py): the prompt's events relayed until it ends, its place asked when they stop;
- collect (collect.py): the verdict, and the outputs stored and recorded;
- retry (retry.py): waiting for a backend, and the next attempt after a transient failure.

At-least-once delivery means this job may run again for the same generation (a worker killed
mid-job, a recovery re-enqueue). So it never submits blindly: before submitting again it asks the
recorded backend's `/history/{prompt_id}` and `/queue`, and an existing prompt is followed (or its
result collected) instead of run twice. A job that takes over a pending prompt sent under a dead
worker's client id takes it back and submits it again under its own at the same place in the queue.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from comfy.client import QueueItem
from comfy.errors import ComfyUnavailable, ComfyUnreachable
from db import generation_reads, transitions
from db.engine import single_statement
from db.payloads import ProgressPayload
from db.reachability import database_unreachable
from db.states import IllegalTransition, Phase, Status
from jobs.backends import Backend, NoBackend
from jobs.bus import publish_change
from jobs.relay import Relay
from jobs.worker.claim import Claimed, claim, new_lease
from jobs.worker.collect import conclude
from jobs.worker.deliver import InputFile
from jobs.worker.follow import follow, follow_elsewhere, queue_running, remove_prompt
from jobs.worker.outcomes import Cancelled, Lost, Permanent, Transient
from jobs.worker.retry import BackendWait, retry_or_fail
from jobs.worker.runtime import Runtime
from jobs.worker.submit import prepare_workflow, prompt_id_for, submit, take_back

__all__ = ["GenerationRun", "run_generation"]

log = logging.getLogger(__name__)

_Result = TypeVar("_Result")


async def run_generation(runtime: Runtime, generation_id: uuid.UUID, attempt: int | None = None) -> None:
    """Run the generation; `attempt`, the one its job was enqueued for, lets the claim record the backend."""
    claimed = await claim(runtime, generation_id, new_lease(runtime), attempt)
    if claimed is None:
        return
    run = GenerationRun(runtime, claimed)
    runtime.running[generation_id] = run
    try:
        await run.execute()
    finally:
        runtime.running.pop(generation_id, None)


class GenerationRun:
    """One job's run of a claimed generation: the state its parts share."""

    def __init__(self, runtime: Runtime, claimed: Claimed) -> None:
        generation = claimed.generation
        self.runtime = runtime
        self.generation = generation
        self.id = generation.id
        self.lease = claimed.lease
        self.prompt_id = prompt_id_for(generation.id, generation.attempt)
        self.cancel_requested = asyncio.Event()
        if generation.status is Status.CANCELLING:
            self.cancel_requested.set()
        self.relay = Relay(
            redis=runtime.redis,
            keys=runtime.keys,
            sessions=runtime.sessions,
            generation_id=generation.id,
            owner_id=generation.owner_id,
            lease=claimed.lease,
            seq=generation.last_seq,
            state=ProgressPayload.from_row(generation) if claimed.resumed else None,
        )
        if claimed.event is not None:
            # RUNNING is committed; it goes out with the relay's first flush, ahead of anything else
            # this run publishes, in the same round trip as the progress that follows the submit.
            self.relay.queue_event(claimed.event)
        # The backend recorded for this attempt's prompt (by the claim's placement, or by a job that died).
        recorded = generation.backend_url is not None and generation.prompt_id == self.prompt_id
        self.backend: Backend | None = None
        if recorded and generation.backend_url is not None:
            self.backend = runtime.backends.get(generation.backend_url)
        self.submitted = False  # ComfyUI has accepted this run's prompt (or was found holding it)
        # The prompt may be on `self.backend`: a job that died recorded it there, or this job sent it
        # and saw no answer. Before submitting, /history and /queue are asked.
        self.maybe_submitted = claimed.resumed and recorded
        self.workflow: dict[str, Any] = {}
        self.inputs: tuple[InputFile, ...] = ()  # uploaded images/masks the workflow reads (submit.deliver_inputs)
        self.queue_number: int | None = None  # the queue place of a prompt taken back to submit again
        self.redialing = False  # this run dropped its websocket to have it registered again
        deadline = None
        if claimed.resumed and generation.phase is Phase.BACKEND_WAIT and generation.deadline_at is not None:
            deadline = generation.deadline_at.timestamp()  # an outage's deadline outlives the job that set it
        self.backend_wait = BackendWait(deadline=deadline)
        self._held: Backend | None = None  # the backend whose in_flight counts this run

    def request_cancel(self) -> None:
        self.cancel_requested.set()

    async def execute(self) -> None:
        """Run to the end and record it: SUCCEEDED (by collect), FAILED, CANCELLED, or the next attempt."""
        try:
            try:
                await self._run()
            except Cancelled:
                await self.finish(Status.CANCELLED, {})
            except Permanent as exc:
                await self.finish(
                    Status.FAILED,
                    {
                        "error_code": exc.code,
                        "error_message": exc.message,
                        "error_retryable": exc.retryable,
                        "error_node": exc.node,
                        "error_input": exc.input,
                    },
                )
            except (Transient, ComfyUnavailable, NoBackend) as exc:
                await retry_or_fail(self, str(exc) or type(exc).__name__)
            except Exception as exc:
                if database_unreachable(exc):
                    # Not this attempt's fault, and recording any end needs the database too: left
                    # RUNNING, the generation is resumed by recovery (jobs/worker/recovery.py), its
                    # prompt kept.
                    raise
                # A bug or an unexpected answer must not leave the generation RUNNING under the lease
                # of a worker that is alive (recovery only takes over from dead ones): retry it.
                log.exception("generation %s: unexpected error", self.id)
                await retry_or_fail(self, f"internal error ({type(exc).__name__}); see the worker log")
        except Lost:
            log.info("generation %s: no longer ours, stopping", self.id)
            if self.backend is not None and self.submitted:
                await remove_prompt(self, self.backend.client)
        finally:
            await self.relay.close()
            await self._hold(None)

    async def _run(self) -> None:
        """Run the prompt; while no backend can be reached, wait for one (BACKEND_WAIT, not an attempt)."""
        if not self.workflow:
            self.workflow = await prepare_workflow(self)
        while True:
            backend: Backend | None = None
            try:
                backend = self._pick()
                await self._hold(backend)
                await self._run_on(backend)
                return
            except NoBackend as exc:
                reason = str(exc)
            except ComfyUnreachable as exc:
                if backend is None:
                    raise
                self.runtime.backends.record(backend, ok=False)
                reason = f"Backend {backend.name} is unreachable ({exc.why})"
                log.info("generation %s: %s", self.id, exc)
            await self.backend_wait.wait(self, reason)

    def _pick(self) -> Backend:
        """The backend the prompt may be on already, else the recorded one if healthy, else a healthy one."""
        backend = self.backend
        usable = backend is not None and not backend.removed
        if self.maybe_submitted:
            if backend is not None and usable:
                return backend  # asked first, even when it looks down: the prompt may be there
            # Its backend left the pool: nothing can be asked there, so the prompt goes elsewhere.
            self.maybe_submitted = self.submitted = False
        elif backend is not None and usable and backend.healthy:
            return backend
        return self.runtime.backends.choose(checkpoint=self.generation.params.get("checkpoint"))

    async def _hold(self, backend: Backend | None) -> None:
        """Count this run in `backend`'s in_flight (and no longer in the one before)."""
        if backend is self._held:
            return
        if backend is not None:
            backend.in_flight += 1
        held, self._held = self._held, backend
        if held is not None:
            await self.runtime.backends.release(held)

    async def _run_on(self, backend: Backend) -> None:
        """Find the prompt on `backend` if it may be there already, else submit it; then follow it."""
        client = backend.client
        async with backend.socket.subscribe(self.prompt_id) as events:
            item: QueueItem | None = None
            position: int | None = None
            if self.maybe_submitted:
                # Never twice: a prompt ComfyUI still has (or has run) is followed, not sent again.
                entry = await client.history(self.prompt_id)
                self.answered(backend)
                if entry is not None:
                    self.submitted = True
                    await conclude(self, client, entry, outputs=None)
                    return
                queue = await client.queue()
                item, position = queue.item(self.prompt_id), queue.position(self.prompt_id)
                if item is None and self.submitted:
                    raise Transient("the prompt vanished from the backend (restarted?)")
                if item is not None and position and item.client_id != backend.socket.client_id:
                    item, position = await take_back(self, client, item)
                if item is not None and item.client_id != backend.socket.client_id:
                    # Under the client id of the worker that sent it: only that id's socket hears it.
                    self.submitted = True
                    await follow_elsewhere(self, backend, events, item.client_id, running=position == 0)
                    return
            if self.cancel_requested.is_set() and item is None:
                raise Cancelled
            if item is None:
                await submit(self, backend)
            else:
                self.submitted = True
                if position == 0:
                    backend.socket.mark_running(self.prompt_id)
                    queue_running(self, backend, tracker=None, live=backend.socket.connected.is_set())
                else:
                    self.relay.queue_progress(phase=Phase.BACKEND_QUEUE, queue_position=position)
            await follow(self, backend, events, socket=backend.socket, started=position == 0)

    def answered(self, backend: Backend) -> None:
        """`backend` answered over HTTP: an outage is over (the next wait has a deadline of its own), and a
        websocket still pausing between reconnects tries at once."""
        self.backend_wait.reached = True
        if backend.socket.down:
            backend.socket.retry_now()

    async def guarded(self, write: Awaitable[_Result]) -> _Result:
        """A lease-guarded write; its refusal as how the run ends (Lost, or Cancelled by a user)."""
        try:
            return await write
        except (transitions.StaleLease, transitions.GenerationNotFound):
            raise Lost from None
        except IllegalTransition as exc:
            if exc.current is Status.CANCELLING:
                raise Cancelled from None
            raise Lost from None

    async def check_still_ours(self) -> None:
        """A guarded write matched nothing: Lost if the lease is gone, Cancelled if a cancel came."""
        async with single_statement(self.runtime.sessions) as session:
            row = await generation_reads.get_generation(session, generation_id=self.id)
        if row is None or row.lease != self.lease:
            raise Lost
        if row.status is Status.CANCELLING:
            raise Cancelled

    async def finish(self, status: Status, values: dict[str, Any]) -> transitions.Change:
        """Move to `status` under our lease; a cancel that arrived meanwhile wins (CANCELLED)."""
        await self.relay.flush()  # what this run queued (its RUNNING event, say) goes out before its end
        async with single_statement(self.runtime.sessions) as session:
            try:
                change = await transitions.transition(
                    session, generation_id=self.id, to=status, lease=self.lease, values=values
                )
            except IllegalTransition as exc:
                if exc.current is Status.CANCELLING and status is not Status.CANCELLED:
                    await session.rollback()
                    change = await transitions.transition(
                        session, generation_id=self.id, to=Status.CANCELLED, lease=self.lease
                    )
                else:
                    raise Lost from None
            except (transitions.StaleLease, transitions.GenerationNotFound):
                raise Lost from None
        await publish_change(self.runtime.redis, self.runtime.keys, change)
        return change
