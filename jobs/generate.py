"""The generate job: run one generation on ComfyUI, exactly once, and relay everything it does.

At-least-once delivery means this job may run again for the same generation
(a worker killed mid-job, a recovery re-enqueue). So it never submits blindly:
the ComfyUI prompt id is derived from the generation id and attempt, and before
submitting the job asks the backend's `/history/{prompt_id}` and `/queue`; an
existing prompt is followed (or its result collected) instead of run twice.

Ownership: claiming a generation stores a fresh `lease`; every later write is
guarded by it, so a job that lost ownership cannot change the generation.

Live events: ComfyUI sends a prompt's execution messages only to the websocket
of the client id it was submitted with (its `/queue` entry says which). A job
that takes over a prompt from a dead worker takes a pending one back and
submits it again under its own client id at the same place in the queue, and
follows a running one on a socket of its own with the dead worker's client id.
While no events can be had, the phase says so (UNTRACKED) and `/queue` and
`/history` are asked every second; a phase is never guessed.

Backends that go away: a closed websocket is noticed at once (`Disconnected`)
and `/queue` + `/history` are asked. When no backend can be reached, the job
waits in phase BACKEND_WAIT (reason, next try, deadline) and tries again with
backoff, or as soon as a backend's websocket opens; that is not an attempt.
After `backend_wait_s` it fails with BACKEND_UNAVAILABLE. A prompt that may be
on a backend is looked for there before anything is submitted again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession

from comfy.client import ComfyClient, HistoryEntry, QueueItem
from comfy.errors import ComfyError, ComfyUnavailable, ComfyUnreachable, PromptValidationError
from comfy.events import (
    Disconnected,
    ExecutionStarted,
    Failed,
    Finished,
    Interrupted,
    NodeExecuting,
    NodeOutput,
    NodesCached,
    OutputImage,
    Preview,
    Progress,
    ProgressState,
    Reconnected,
    Succeeded,
)
from comfy.progress import ProgressSnapshot, ProgressTracker
from comfy.socket import ComfySocket, PromptEvents
from comfy.templates import (
    RAW_TEMPLATE,
    Limits,
    ParamValidationError,
    build_workflow,
    check_raw_workflow,
    validate_params,
)
from db import generation_reads, transitions
from db.engine import single_statement
from db.models import Generation
from db.reachability import database_unreachable
from db.states import IllegalTransition, Phase, Status
from jobs.backends import Backend, NoBackend
from jobs.bus import BusEvent, publish_change
from jobs.enqueue import enqueue_generation
from jobs.relay import Relay
from jobs.runtime import Runtime

__all__ = ["GenerationRun", "prompt_id_for", "run_generation"]

log = logging.getLogger(__name__)

_PROMPT_NAMESPACE = uuid.UUID("5a6e1f6b-2c1d-4f57-9a43-7d0c2b9e3a11")
_QUEUE_POLL_S = 1.0  # while waiting in ComfyUI's queue: position updates
_BACKEND_RETRY_MAX_S = 10.0  # the longest pause between tries while waiting for a backend
_CANCEL_GRACE_S = 10.0  # how long an interrupt may take before we stop waiting for its event
_W = TypeVar("_W")


def prompt_id_for(generation_id: uuid.UUID, attempt: int) -> str:
    return str(uuid.uuid5(_PROMPT_NAMESPACE, f"{generation_id}:{attempt}"))


class Transient(Exception):
    """Worth another attempt: backend down, socket lost without a result, prompt vanished."""


class Permanent(Exception):
    """Another attempt would fail the same way (`retryable`: a user's retry later may not)."""

    def __init__(
        self, code: str, message: str, *, node: str | None = None, input: str | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.node = node
        self.input = input
        self.retryable = retryable


class Cancelled(Exception):
    pass


class Lost(Exception):
    """The generation was deleted or another job took it over: stop without writing."""


async def run_generation(rt: Runtime, generation_id: uuid.UUID, attempt: int | None = None) -> None:
    """Run the generation; `attempt`, the one its job was enqueued for, lets the claim record the backend."""
    lease = f"{rt.worker_id}/{uuid.uuid4().hex[:12]}"
    run = await _claim(rt, generation_id, lease, attempt)
    if run is None:
        return
    rt.running[generation_id] = run
    try:
        await run.execute()
    finally:
        rt.running.pop(generation_id, None)


async def _claim(rt: Runtime, generation_id: uuid.UUID, lease: str, attempt: int | None) -> GenerationRun | None:
    """Take ownership: QUEUED → RUNNING, or take over from a dead worker. None = nothing to do.

    The common case is one autocommit statement and no SELECT: the guarded UPDATE with its event,
    which also records where the prompt will go (backend and prompt id, see `_placement`): a re-run
    after a crash looks there before submitting. Without a placement (no healthy backend now, or a
    job for another attempt), `_submit` records it before the prompt goes out.
    """
    async with single_statement(rt.sessions) as session:
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
                placement=_placement(rt, generation_id, attempt),
                wait_for_flush=False,  # a lost claim is repaired by a re-run (see `transition`)
            )
        except transitions.GenerationNotFound:
            return None
        except IllegalTransition as exc:
            if exc.current is not Status.RUNNING and exc.current is not Status.CANCELLING:
                return None  # finished, or cancelled or claimed by another job meanwhile
            await session.rollback()
            return await _take_over(rt, session, generation_id, lease)
    run = GenerationRun(rt, change.generation, lease)
    generation = change.generation
    if generation.backend_url is not None and generation.prompt_id == run.prompt_id:
        run.backend = rt.backends.get(generation.backend_url)
    # RUNNING is committed; it goes out with the relay's first flush, ahead of anything else this
    # run publishes, in the same round trip as the progress that follows the submit.
    run.relay.queue_event(BusEvent.from_row(change.event, owner_id=generation.owner_id))
    return run


def _placement(rt: Runtime, generation_id: uuid.UUID, attempt: int | None) -> transitions.Placement | None:
    if attempt is None:
        return None
    try:
        by_checkpoint, default = rt.backends.choices()
    except NoBackend:
        return None  # `execute` retries or fails it
    return transitions.Placement(
        attempt=attempt,
        prompt_id=prompt_id_for(generation_id, attempt),
        backends={checkpoint: backend.url for checkpoint, backend in by_checkpoint.items()},
        default=default.url,
    )


async def _take_over(rt: Runtime, session: AsyncSession, generation_id: uuid.UUID, lease: str) -> GenerationRun | None:
    """An active generation whose job died: take its lease over if its worker is gone."""
    generation = await generation_reads.get_generation(session, generation_id=generation_id)
    if generation is None or generation.status not in (Status.RUNNING, Status.CANCELLING):
        return None
    old_lease = generation.lease  # read now: take_over refreshes `generation` with the new lease
    if old_lease is not None and await _owner_alive(rt, old_lease):
        return None
    taken = await transitions.take_over(session, generation_id=generation_id, old_lease=old_lease, new_lease=lease)
    await session.commit()
    if taken is None:
        return None
    log.info("generation %s recovered from lease %s (now %s)", generation_id, old_lease, lease)
    return GenerationRun(rt, taken, lease, resumed=True)


async def _owner_alive(rt: Runtime, lease: str) -> bool:
    worker_id = lease.split("/", 1)[0]
    return bool(await rt.redis.exists(rt.keys.worker(worker_id)))


class GenerationRun:
    def __init__(self, rt: Runtime, generation: Generation, lease: str, *, resumed: bool = False) -> None:
        self.rt = rt
        self.generation = generation
        self.id = generation.id
        self.lease = lease
        # Taken over from a job that died: its prompt may be on the recorded backend already.
        self.resumed = resumed
        self.prompt_id = prompt_id_for(generation.id, generation.attempt)
        self.cancel_requested = asyncio.Event()
        if generation.status is Status.CANCELLING:
            self.cancel_requested.set()
        self.relay = Relay(
            redis=rt.redis,
            keys=rt.keys,
            sessions=rt.sessions,
            generation_id=generation.id,
            owner_id=generation.owner_id,
            lease=lease,
            seq=generation.last_seq,
            state=_resumed_state(generation) if resumed else None,
        )
        self.submitted = False  # ComfyUI has accepted this run's prompt (or was found holding it)
        # The prompt may be on `self.backend`: it was recorded there before this job (a takeover), or
        # this job sent it and saw no answer. Before submitting, /history and /queue are asked.
        self.maybe_submitted = resumed and generation.backend_url is not None and generation.prompt_id == self.prompt_id
        self.workflow: dict[str, Any] = {}
        self.backend: Backend | None = None  # the backend recorded for this run's prompt, if any
        if self.maybe_submitted and generation.backend_url is not None:
            self.backend = rt.backends.get(generation.backend_url)
        self._held: Backend | None = None  # the backend whose in_flight counts this run
        self._number: int | None = None  # the queue place of a prompt taken back to submit again
        # Waiting for a backend (BACKEND_WAIT): when it gives up, and the tries so far.
        self._deadline: float | None = None
        if resumed and generation.phase is Phase.BACKEND_WAIT and generation.deadline_at is not None:
            self._deadline = generation.deadline_at.timestamp()
        self._waits = 0
        self._reached = False  # a backend answered since the last wait
        self._redialing = False  # this job dropped its websocket to have it registered again

    def request_cancel(self) -> None:
        self.cancel_requested.set()

    async def execute(self) -> None:
        try:
            try:
                await self._run()
            except Cancelled:
                await self._finish(Status.CANCELLED, {})
            except Permanent as exc:
                await self._finish(
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
                await self._retry_or_fail(str(exc) or type(exc).__name__)
            except Exception as exc:
                if database_unreachable(exc):
                    # Not this attempt's fault, and recording any end needs the database too: left
                    # RUNNING, the generation is resumed by recovery (jobs/worker.py), its prompt kept.
                    raise
                # A bug or an unexpected answer must not leave the generation RUNNING under the lease
                # of a worker that is alive (recovery only takes over from dead ones): retry it.
                log.exception("generation %s: unexpected error", self.id)
                await self._retry_or_fail(f"internal error ({type(exc).__name__}); see the worker log")
        except Lost:
            log.info("generation %s: no longer ours, stopping", self.id)
            if self.backend is not None and self.submitted:
                await self._remove_prompt(self.backend.client)
        finally:
            await self.relay.close()
            await self._hold(None)

    async def _hold(self, backend: Backend | None) -> None:
        """Count this run in `backend`'s in_flight (and no longer in the one before)."""
        if backend is self._held:
            return
        if backend is not None:
            backend.in_flight += 1
        held, self._held = self._held, backend
        if held is not None:
            await self.rt.backends.release(held)

    async def _run(self) -> None:
        """Run the prompt; while no backend can be reached, wait for one (BACKEND_WAIT, not an attempt)."""
        if not self.workflow:
            self.workflow = self._prepare()
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
                self.rt.backends.record(backend, ok=False)
                reason = f"Backend {backend.name} is unreachable ({exc.why})"
                log.info("generation %s: %s", self.id, exc)
            await self._wait_for_backend(reason)

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
        return self.rt.backends.choose(checkpoint=self.generation.params.get("checkpoint"))

    async def _wait_for_backend(self, reason: str) -> None:
        """Publish BACKEND_WAIT (reason, next try, deadline) and wait; past the deadline, FAILED."""
        now = time.time()
        if self._reached:
            self._deadline, self._waits, self._reached = None, 0, False  # a new outage
        if self._deadline is None:
            self._deadline = now + self.rt.settings.backend_wait_s
        if now >= self._deadline:
            waited = self.rt.settings.backend_wait_s
            raise Permanent(
                "BACKEND_UNAVAILABLE",
                f"No ComfyUI backend could be reached for {waited:.0f} s. Last: {reason}",
                retryable=True,
            )
        settings = self.rt.settings
        delay = min(_BACKEND_RETRY_MAX_S, max(settings.retry_base_delay_s, 0.05) * 2 ** min(self._waits, 16))
        delay *= random.uniform(0.5, 1.0)
        self._waits += 1
        retry_at = min(now + delay, self._deadline)
        if self._waits == 1:
            log.warning(
                "generation %s: waiting up to %.0f s for a backend: %s",
                self.id,
                self._deadline - now,
                reason,
            )
        self.relay.queue_progress(
            phase=Phase.BACKEND_WAIT.value,
            reason=reason,
            retryAt=round(retry_at, 3),
            deadlineAt=round(self._deadline, 3),
            queuePosition=None,
        )
        # The row first: whoever reacts to the event reads the wait there too.
        if not await self.relay.write_now():
            await self._check_still_ours()
        await self.relay.flush()
        cancel = asyncio.ensure_future(self.cancel_requested.wait())
        change = asyncio.ensure_future(self.rt.backends.wait_for_change(retry_at - now))
        try:
            await asyncio.wait((cancel, change), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (cancel, change):
                task.cancel()
        if self.cancel_requested.is_set():
            # Unreachable, a prompt it may hold cannot be removed; a restarted ComfyUI has lost it.
            raise Cancelled

    def _answered(self, backend: Backend) -> None:
        """`backend` answered over HTTP: an outage is over (the next wait has a deadline of its own), and a
        websocket still pausing between reconnects tries at once."""
        self._reached = True
        if backend.socket.down:
            backend.socket.retry_now()

    def _prepare(self) -> dict[str, Any]:
        """The API-format workflow, rebuilt from the stored parameters by the shared validation."""
        prefix = f"safelight/{self.id.hex[:12]}"
        settings = self.rt.settings
        try:
            if self.generation.template == RAW_TEMPLATE:
                raw = self.generation.params.get("workflow")
                return check_raw_workflow(raw, allowed_classes=settings.raw_node_classes, filename_prefix=prefix)
            template = self.rt.templates.get(self.generation.template)
            if template is None:
                raise Permanent("UNKNOWN_TEMPLATE", f"template {self.generation.template!r} is not installed")
            params = validate_params(template, self.generation.params, limits=Limits.from_settings(settings))
        except ParamValidationError as exc:
            raise Permanent("INVALID_PARAMETERS", str(exc)) from None
        return build_workflow(template, params, filename_prefix=prefix)

    async def _run_on(self, backend: Backend) -> None:
        client = backend.client
        async with backend.socket.subscribe(self.prompt_id) as events:
            item: QueueItem | None = None
            position: int | None = None
            if self.maybe_submitted:
                # Never twice: a prompt ComfyUI still has (or has run) is followed, not sent again.
                entry = await client.history(self.prompt_id)
                self._answered(backend)
                if entry is not None:
                    self.submitted = True
                    await self._conclude(client, entry, outputs=None)
                    return
                queue = await client.queue()
                item, position = queue.item(self.prompt_id), queue.position(self.prompt_id)
                if item is None and self.submitted:
                    raise Transient("the prompt vanished from the backend (restarted?)")
                if item is not None and position and item.client_id != backend.socket.client_id:
                    item, position = await self._take_back(client, item)
                if item is not None and item.client_id != backend.socket.client_id:
                    # Under the client id of the worker that sent it: only that id's socket hears it.
                    self.submitted = True
                    await self._follow_elsewhere(backend, events, item.client_id, running=position == 0)
                    return
            if self.cancel_requested.is_set() and item is None:
                raise Cancelled
            if item is None:
                await self._submit(backend)
            else:
                self.submitted = True
                if position == 0:
                    backend.socket.mark_running(self.prompt_id)
                    self._queue_running(backend, tracker=None, live=backend.socket.connected.is_set())
                else:
                    self.relay.queue_progress(phase=Phase.BACKEND_QUEUE.value, queuePosition=position)
            with contextlib.suppress(_Done):
                await self._follow(backend, events, socket=backend.socket, started=position == 0)

    async def _take_back(self, client: ComfyClient, item: QueueItem) -> tuple[QueueItem | None, int | None]:
        """A pending prompt sent under another (dead) worker's client id: take it out of the queue, to
        submit it again under ours at the same place (`number`). If it started meanwhile, it stays."""
        await client.delete_from_queue([self.prompt_id])
        queue = await client.queue()
        again = queue.item(self.prompt_id)
        if again is not None:
            return again, queue.position(self.prompt_id)
        if await client.history(self.prompt_id) is not None:
            return item, 0  # it ran in between: follow it (its history concludes it)
        self._number = item.number
        return None, None

    async def _follow_elsewhere(
        self, backend: Backend, events: PromptEvents, client_id: str | None, *, running: bool
    ) -> None:
        """Follow a prompt on a socket of its submitter's client id (ComfyUI sends its execution messages
        there only); without one (`events`, the backend's own socket), from /queue and /history."""
        if running:
            self._queue_untracked(backend)
        else:
            self.relay.queue_progress(phase=Phase.BACKEND_QUEUE.value)
        if client_id is None:
            with contextlib.suppress(_Done):
                await self._follow(backend, events, socket=backend.socket, started=running, live=False)
            return
        socket = backend.follow(client_id=client_id, prompt_id=self.prompt_id)
        try:
            async with socket.subscribe(self.prompt_id) as own:
                await socket.start()  # its first event is Reconnected: /queue is asked, then it goes live
                with contextlib.suppress(_Done):
                    await self._follow(backend, own, socket=socket, started=running, live=False)
        finally:
            await socket.close()

    async def _submit(self, backend: Backend) -> None:
        if backend is not self.backend or self.generation.prompt_id != self.prompt_id:
            # Record where the prompt goes before it goes there: a re-run after a crash looks here.
            async with single_statement(self.rt.sessions) as session:
                ok = await transitions.update_progress(
                    session,
                    generation_id=self.id,
                    lease=self.lease,
                    values={"backend_url": backend.url, "prompt_id": self.prompt_id},
                )
            if not ok:
                await self._check_still_ours()
        self.backend = backend
        self.maybe_submitted = True  # from here on, an unanswered submit may have been accepted
        try:
            await backend.client.submit(
                self.workflow, prompt_id=self.prompt_id, client_id=backend.socket.client_id, number=self._number
            )
        except PromptValidationError as exc:
            first = exc.first
            node, input_name = (None, None) if first is None else (first.node_label, first.input_name)
            raise Permanent("COMFY_VALIDATION", str(exc), node=node, input=input_name) from None
        except ComfyUnreachable as exc:
            if not exc.sent:
                self.maybe_submitted = False  # the request never left: another backend may take it
            raise  # recorded by `_run`, which waits for a backend
        except ComfyUnavailable:
            self.rt.backends.record(backend, ok=False)
            raise
        self._answered(backend)
        self.rt.backends.record(backend, ok=True)
        backend.last_checkpoint = self.generation.params.get("checkpoint")
        self.submitted = True
        self.relay.queue_progress(phase=Phase.BACKEND_QUEUE.value)  # sent with what follows it

    async def _follow(
        self,
        backend: Backend,
        events: PromptEvents,
        *,
        socket: ComfySocket,
        started: bool = False,
        live: bool = True,
    ) -> None:
        """Relay the prompt's events until it ends. `live`: events are arriving (False: the socket is not
        connected yet, or closed; /queue and /history are asked every `_QUEUE_POLL_S` meanwhile)."""
        client = backend.client
        tracker = ProgressTracker(self.workflow, floor=self.relay.state["percent"])
        watchdog_s = self.rt.settings.comfy_watchdog_s
        live = live and socket.connected.is_set()  # down already: its Disconnected went before us
        outputs: list[OutputImage] | None = [] if not started else None
        next_event: asyncio.Task[Any] | None = None
        cancel_wait = asyncio.create_task(self.cancel_requested.wait())
        cancel_sent = False
        try:
            while True:
                if next_event is None and events.pending() and not cancel_wait.done():
                    # Hot path (2,000 progress messages/s): an event is already waiting, take it
                    # without a task and a wait per message.
                    event = await anext(events)
                else:
                    if next_event is None:
                        await self.relay.flush()  # nothing more is ready: send what the burst queued
                        next_event = asyncio.create_task(anext(events))
                    timeout = watchdog_s if started and live else _QUEUE_POLL_S
                    waiting = {next_event} if cancel_sent else {next_event, cancel_wait}
                    done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                    if cancel_wait in done and not cancel_sent:
                        cancel_sent = True
                        if await self._cancel_on_backend(client, started=started):
                            raise Cancelled
                        continue
                    if next_event not in done:
                        started = await self._watch(
                            backend, socket, tracker, started=started, cancel_sent=cancel_sent, live=live, silent=True
                        )
                        continue
                    event = next_event.result()
                    next_event = None
                if isinstance(event, Progress):
                    snap = tracker.apply(event)
                    # Queued like every change in this loop, sent by the next flush (when no event is
                    # ready, or before any other publish): a burst of ready messages costs one round
                    # trip, and the order on the bus is ComfyUI's order.
                    self.relay.queue_progress(emitted_at=event.emitted_at, **_executing(snap))
                elif isinstance(event, Preview):
                    self.relay.preview(event)
                elif isinstance(event, (NodeExecuting, NodesCached, ProgressState)):
                    snap = tracker.apply(event)
                    if isinstance(event, ProgressState):
                        continue  # folded in; the next executing/progress message publishes it
                    self.relay.queue_progress(**_executing(snap), queuePosition=None)
                elif isinstance(event, ExecutionStarted):
                    started = True
                    tracker.apply(event)
                    self.relay.queue_progress(phase=Phase.EXECUTING.value, queuePosition=None)
                elif isinstance(event, NodeOutput):
                    tracker.apply(event)
                    if outputs is not None:
                        outputs.extend(i for i in event.images if i.type == "output")
                elif isinstance(event, Succeeded):
                    await self._collect(client, outputs)
                    return
                elif isinstance(event, Failed):
                    raise _failure(event)
                elif isinstance(event, Interrupted):
                    if self.cancel_requested.is_set():
                        raise Cancelled
                    raise Transient("the prompt was interrupted on the backend")
                elif isinstance(event, Disconnected):
                    # Noticed the moment the socket closed: ask where the prompt is now (an unreachable
                    # backend raises ComfyUnreachable: `_run` waits for it), and poll until it is back.
                    live = False
                    outputs = None
                    if self._redialing:
                        self._redialing = False  # our own drop, /queue just asked: wait for Reconnected
                        continue
                    started = await self._watch(
                        backend, socket, tracker, started=started, cancel_sent=cancel_sent, live=False
                    )
                elif isinstance(event, (Reconnected, Finished)):
                    # A gap (or an end marker without a verdict): the backend's history decides.
                    live = live or isinstance(event, Reconnected)
                    outputs = None
                    started = await self._watch(
                        backend, socket, tracker, started=started, cancel_sent=cancel_sent, live=live
                    )
        finally:
            await self.relay.flush()
            for task in (next_event, cancel_wait):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, ComfyError):
                        await task

    async def _watch(
        self,
        backend: Backend,
        socket: ComfySocket,
        tracker: ProgressTracker,
        *,
        started: bool,
        cancel_sent: bool,
        live: bool,
        silent: bool = False,
    ) -> bool:
        """No event for a while (`silent`) or a gap: ask the backend where the prompt is; whether it started."""
        client = backend.client
        queue = await client.queue()
        self._answered(backend)
        position = queue.position(self.prompt_id)
        live = live and socket.connected.is_set()  # never connected (a proxy without websockets): no events
        if position is not None:
            if position == 0:
                if live and silent and started:
                    # Running, socket open, yet silent for the whole watchdog: ComfyUI may have forgotten
                    # this socket (upstream drops a client id's socket when any older socket of that id
                    # closes, such as one a network blip left half-open). Connecting again registers it,
                    # and ComfyUI names the running node to it at once.
                    log.info("generation %s: silent while running; reconnecting its websocket", self.id)
                    self._redialing = True  # its Disconnected is expected: no UNTRACKED for it
                    await socket.drop()
                    return True
                if live:
                    socket.mark_running(self.prompt_id)
                self._queue_running(backend, tracker=tracker, live=live)
                await self.relay.flush()
                return True
            if not started:
                await self.relay.progress(phase=Phase.BACKEND_QUEUE.value, queuePosition=position)
            return started
        entry = await client.history(self.prompt_id)
        if entry is not None:
            await self._conclude(client, entry, outputs=None)
            raise _Done
        if cancel_sent:
            raise Cancelled  # deleted from the queue before it ran
        raise Transient("the prompt vanished from the backend (restarted?)")

    def _queue_running(self, backend: Backend, *, tracker: ProgressTracker | None, live: bool) -> None:
        """ComfyUI runs the prompt: EXECUTING when its events arrive, else UNTRACKED (never a phase that is
        not true, such as waiting in the queue)."""
        if not live:
            self._queue_untracked(backend)
            return
        phase = self.relay.state["phase"]
        if phase != Phase.EXECUTING.value and phase != Phase.SAVING.value:
            snap = tracker.snapshot if tracker is not None else None
            if snap is None or snap.node is None:
                self.relay.queue_progress(phase=Phase.EXECUTING.value, queuePosition=None)
            else:
                self.relay.queue_progress(**_executing(snap), queuePosition=None)

    def _queue_untracked(self, backend: Backend) -> None:
        self.relay.queue_progress(
            phase=Phase.UNTRACKED.value,
            reason=f"ComfyUI ({backend.name}) is running it; live progress is not available right now",
            queuePosition=None,
        )

    async def _conclude(self, client: ComfyClient, entry: HistoryEntry, *, outputs: list[OutputImage] | None) -> None:
        if entry.succeeded:
            await self._collect(client, outputs)
            return
        if entry.interrupted:
            if self.cancel_requested.is_set():
                raise Cancelled
            raise Transient("the prompt was interrupted on the backend")
        failure = entry.error
        if failure is not None:
            raise _failure(failure)
        if self.cancel_requested.is_set():
            raise Cancelled
        raise Transient(f"history of {self.prompt_id} has no verdict ({entry.status_str})")

    async def _cancel_on_backend(self, client: ComfyClient, *, started: bool = False) -> bool:
        """Delete the prompt if it waits, interrupt it if it runs. True when it is gone already.

        Known to run (`started`: its execution_start came and no end yet), it is interrupted at
        once: `POST /interrupt {"prompt_id": id}` stops only that prompt and ignores it once it is
        not the one running (recording 06); its end arrives as an event. Otherwise the delete goes
        first, before asking where the prompt is: `POST /queue {"delete": [id]}` only touches
        pending prompts and ignores a running or unknown id (recording 07), so a waiting prompt is
        gone one round trip sooner.
        """
        if started:
            await client.interrupt(self.prompt_id)
            return False
        await client.delete_from_queue([self.prompt_id])
        queue = await client.queue()
        position = queue.position(self.prompt_id)
        if position is None:
            return (await client.history(self.prompt_id)) is None
        if position > 0:
            await client.delete_from_queue([self.prompt_id])
            return True
        await client.interrupt(self.prompt_id)
        return False

    async def _remove_prompt(self, client: ComfyClient) -> None:
        with contextlib.suppress(ComfyError):
            await self._cancel_on_backend(client)

    async def _collect(self, client: ComfyClient, outputs: list[OutputImage] | None) -> None:
        if not outputs:
            entry = await client.history(self.prompt_id)
            outputs = [i for i in (entry.images if entry else ()) if i.type == "output"]
        self.relay.stop_previews()
        await self.relay.progress(phase=Phase.SAVING.value)
        last = len(outputs) - 1
        for index, image in enumerate(outputs):
            data = await client.view(image)
            stored = await self.rt.store.put(data)
            final = index == last
            async with single_statement(self.rt.sessions) as session:
                # The image row, its event and, for the last one, SUCCEEDED: one statement that
                # locks the generation first, so no cancel can come between them.
                changes = await self._guarded(
                    transitions.record_image(
                        session,
                        generation_id=self.id,
                        lease=self.lease,
                        image={
                            "index": index,
                            "content_hash": stored.content_hash,
                            "mime": stored.mime,
                            "width": stored.width,
                            "height": stored.height,
                            "seed": self.generation.seed,
                            "size_bytes": stored.size_bytes,
                            "node_id": "",
                        },
                        payload={
                            "index": index,
                            "contentHash": stored.content_hash,
                            "width": stored.width,
                            "height": stored.height,
                            "seed": self.generation.seed,
                            "sizeBytes": stored.size_bytes,
                            "mime": stored.mime,
                        },
                        then=Status.SUCCEEDED if final else None,
                        values={"percent": 100.0} if final else None,
                    )
                )
            if not changes:
                continue  # recorded by an earlier run of this job
            self.relay.seq = changes[0].event.seq
            if final:
                await _publish_both(self.rt, changes[0], changes[1])
                return
            await publish_change(self.rt.redis, self.rt.keys, changes[0])
        await self._finish(Status.SUCCEEDED, {"percent": 100.0})

    async def _guarded(self, write: Awaitable[_W]) -> _W:
        try:
            change = await write
        except (transitions.StaleLease, transitions.GenerationNotFound):
            raise Lost from None
        except IllegalTransition as exc:
            if exc.current is Status.CANCELLING:
                raise Cancelled from None
            raise Lost from None
        return change

    async def _check_still_ours(self) -> None:
        async with single_statement(self.rt.sessions) as session:
            row = await generation_reads.get_generation(session, generation_id=self.id)
        if row is None or row.lease != self.lease:
            raise Lost
        if row.status is Status.CANCELLING:
            raise Cancelled

    async def _finish(self, status: Status, values: dict[str, Any]) -> transitions.Change:
        """Move to `status` under our lease; a cancel that arrived meanwhile wins (CANCELLED)."""
        await self.relay.flush()  # what this run queued (its RUNNING event, say) goes out before its end
        async with single_statement(self.rt.sessions) as session:
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
        await publish_change(self.rt.redis, self.rt.keys, change)
        return change

    async def _retry_or_fail(self, reason: str) -> None:
        settings = self.rt.settings
        attempt = self.generation.attempt
        error = {"error_code": "BACKEND_UNAVAILABLE", "error_message": reason, "error_retryable": True}
        if attempt >= settings.max_attempts:
            await self._finish(Status.FAILED, {**error, "error_message": f"{reason} (after {attempt} attempts)"})
            return
        delay = min(settings.retry_max_delay_s, settings.retry_base_delay_s * 2 ** (attempt - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter so retries of one outage spread out
        retry_at = time.time() + delay
        why = f"Retrying after: {reason}"
        retry = {
            **error,
            "attempt": attempt + 1,
            "phase": Phase.RETRY_WAIT,
            "phase_reason": why,
            "retry_at": datetime.fromtimestamp(retry_at, UTC),
            "deadline_at": None,
            "lease": None,
            "backend_url": None,
            "prompt_id": None,
            "queue_position": None,
        }
        change = await self._finish(Status.QUEUED, retry)
        if change.generation.status is Status.QUEUED:
            log.info("generation %s: attempt %d failed (%s); retry in %.1fs", self.id, attempt, reason, delay)
            await enqueue_generation(
                self.rt.redis, self.rt.keys, generation_id=self.id, attempt=attempt + 1, defer_s=delay
            )
            # After the QUEUED event: when the next attempt starts and why (the row says it too).
            self.relay.seq = change.event.seq
            await self.relay.announce(
                phase=Phase.RETRY_WAIT.value, reason=why, retryAt=round(retry_at, 3), queuePosition=None
            )


async def _publish_both(rt: Runtime, first: transitions.Change, second: transitions.Change) -> None:
    """`publish_change` of two committed changes, in order, in one round trip (and as forgiving)."""
    try:
        async with rt.redis.pipeline(transaction=False) as pipe:
            for change in (first, second):
                pipe.publish(
                    rt.keys.events, BusEvent.from_row(change.event, owner_id=change.generation.owner_id).encode()
                )
            await pipe.execute()
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        log.warning("event bus unavailable, events of %s not published: %s", first.generation.id, exc)


class _Done(Exception):
    """The watchdog concluded the generation from history."""


def _resumed_state(generation: Generation) -> dict[str, Any]:
    """The relay's progress state as the row last recorded it (a job that takes over goes on from it)."""
    return {
        "phase": generation.phase.value,
        "percent": generation.percent,
        "node": generation.current_node,
        "step": generation.step,
        "maxSteps": generation.max_steps,
        "queuePosition": generation.queue_position,
    }


def _executing(snap: ProgressSnapshot) -> dict[str, Any]:
    """The relay's progress fields for a snapshot taken while ComfyUI executes."""
    return {
        "phase": Phase.EXECUTING.value,
        "percent": snap.percent,
        "node": snap.node,
        "nodeClass": snap.node_class,
        "step": snap.step,
        "maxSteps": snap.max_steps,
    }


def _failure(event: Failed) -> Permanent:
    node = event.node_id if event.node_type is None else f"{event.node_id} ({event.node_type})"
    return Permanent("EXECUTION_ERROR", f"{event.exception_type}: {event.exception_message}", node=node)
