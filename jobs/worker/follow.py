"""Following a submitted prompt: relay its events until it ends, and find out where it is when they stop.

Live events: ComfyUI sends a prompt's execution messages only to the websocket of the client id it was
submitted with (its `/queue` entry says which). A run that takes over a prompt from a dead worker
follows a running one on a socket of its own with the dead worker's client id (`follow_elsewhere`).
While no events can be had, the phase says so (UNTRACKED) and `/queue` and `/history` are asked every
second; a phase is never guessed. A closed websocket is noticed at once (`Disconnected`) and the
backend is asked where the prompt is (`_watch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from comfy.client import ComfyClient
from comfy.errors import ComfyError
from comfy.events import (
    Disconnected,
    ExecutionStarted,
    Failed,
    Finished,
    Interrupted,
    NodeExecuting,
    NodeOutput,
    NodesCached,
    OutputFile,
    Preview,
    Progress,
    ProgressState,
    Reconnected,
    Succeeded,
)
from comfy.progress import ProgressSnapshot, ProgressTracker
from comfy.socket import ComfySocket, PromptEvents
from db.states import Phase
from jobs.backends import Backend
from jobs.worker.collect import collect, conclude, is_result
from jobs.worker.outcomes import Cancelled, Concluded, Transient, failure_of

if TYPE_CHECKING:
    from jobs.worker.run import GenerationRun

__all__ = ["cancel_on_backend", "follow", "follow_elsewhere", "queue_running", "queue_untracked", "remove_prompt"]

log = logging.getLogger(__name__)

_QUEUE_POLL_S = 1.0  # while waiting in ComfyUI's queue (or without events): how often it is asked


async def follow(
    run: GenerationRun,
    backend: Backend,
    events: PromptEvents,
    *,
    socket: ComfySocket,
    started: bool = False,
    live: bool = True,
) -> None:
    """Relay the prompt's events until it ends. `live`: events are arriving (False: the socket is not
    connected yet, or closed; /queue and /history are asked every `_QUEUE_POLL_S` meanwhile)."""
    with contextlib.suppress(Concluded):
        await _follow(run, backend, events, socket=socket, started=started, live=live)


async def _follow(
    run: GenerationRun,
    backend: Backend,
    events: PromptEvents,
    *,
    socket: ComfySocket,
    started: bool,
    live: bool,
) -> None:
    client = backend.client
    relay = run.relay
    tracker = ProgressTracker(run.workflow, floor=relay.state.percent)
    watchdog_s = run.runtime.settings.comfy_watchdog_s
    live = live and socket.connected.is_set()  # down already: its Disconnected went before us
    outputs: list[OutputFile] | None = [] if not started else None
    next_event: asyncio.Task[Any] | None = None
    cancel_wait = asyncio.create_task(run.cancel_requested.wait())
    cancel_sent = False
    try:
        while True:
            if next_event is None and events.pending() and not cancel_wait.done():
                # Hot path (thousands of progress messages a second): an event is already waiting,
                # take it without a task and a wait per message.
                event = await anext(events)
            else:
                if next_event is None:
                    await relay.flush()  # nothing more is ready: send what the burst queued
                    next_event = asyncio.create_task(anext(events))
                timeout = watchdog_s if started and live else _QUEUE_POLL_S
                waiting = {next_event} if cancel_sent else {next_event, cancel_wait}
                done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if cancel_wait in done and not cancel_sent:
                    cancel_sent = True
                    if await cancel_on_backend(run, client, started=started):
                        raise Cancelled
                    continue
                if next_event not in done:
                    started = await _watch(
                        run, backend, socket, tracker, started=started, cancel_sent=cancel_sent, live=live, silent=True
                    )
                    continue
                event = next_event.result()
                next_event = None
            if isinstance(event, Progress):
                snap = tracker.apply(event)
                # Queued like every change in this loop, sent by the next flush (when no event is
                # ready, or before any other publish): a burst of ready messages costs one round
                # trip, and the order on the bus is ComfyUI's order.
                relay.queue_progress(emitted_at=event.emitted_at, **_executing(snap))
            elif isinstance(event, Preview):
                relay.preview(event)
            elif isinstance(event, (NodeExecuting, NodesCached, ProgressState)):
                snap = tracker.apply(event)
                if isinstance(event, ProgressState):
                    continue  # folded in; the next executing/progress message publishes it
                relay.queue_progress(**_executing(snap), queue_position=None)
            elif isinstance(event, ExecutionStarted):
                started = True
                tracker.apply(event)
                relay.queue_progress(phase=Phase.EXECUTING, queue_position=None)
            elif isinstance(event, NodeOutput):
                tracker.apply(event)
                if outputs is not None:
                    outputs.extend(output for output in event.files if is_result(output))
            elif isinstance(event, Succeeded):
                await collect(run, client, outputs)
                return
            elif isinstance(event, Failed):
                raise failure_of(event)
            elif isinstance(event, Interrupted):
                if run.cancel_requested.is_set():
                    raise Cancelled
                raise Transient("the prompt was interrupted on the backend")
            elif isinstance(event, Disconnected):
                # Noticed the moment the socket closed: ask where the prompt is now (an unreachable
                # backend raises ComfyUnreachable: the run waits for it), and poll until it is back.
                live = False
                outputs = None
                if run.redialing:
                    run.redialing = False  # our own drop, /queue just asked: wait for Reconnected
                    continue
                started = await _watch(
                    run, backend, socket, tracker, started=started, cancel_sent=cancel_sent, live=False
                )
            elif isinstance(event, (Reconnected, Finished)):
                # A gap (or an end marker without a verdict): the backend's history decides.
                live = live or isinstance(event, Reconnected)
                outputs = None
                started = await _watch(
                    run, backend, socket, tracker, started=started, cancel_sent=cancel_sent, live=live
                )
    finally:
        await relay.flush()
        for task in (next_event, cancel_wait):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, ComfyError):
                    await task


async def _watch(
    run: GenerationRun,
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
    run.answered(backend)
    position = queue.position(run.prompt_id)
    live = live and socket.connected.is_set()  # never connected (a proxy without websockets): no events
    if position is not None:
        if position == 0:
            if live and silent and started:
                # Running, socket open, yet silent for the whole watchdog: ComfyUI may have forgotten
                # this socket (upstream drops a client id's socket when any older socket of that id
                # closes, such as one a network blip left half-open). Connecting again registers it,
                # and ComfyUI names the running node to it at once.
                log.info("generation %s: silent while running; reconnecting its websocket", run.id)
                run.redialing = True  # its Disconnected is expected: no UNTRACKED for it
                await socket.drop()
                return True
            if live:
                socket.mark_running(run.prompt_id)
            queue_running(run, backend, tracker=tracker, live=live)
            await run.relay.flush()
            return True
        if not started:
            await run.relay.progress(phase=Phase.BACKEND_QUEUE, queue_position=position)
        return started
    entry = await client.history(run.prompt_id)
    if entry is not None:
        await conclude(run, client, entry, outputs=None)
        raise Concluded
    if cancel_sent:
        raise Cancelled  # deleted from the queue before it ran
    raise Transient("the prompt vanished from the backend (restarted?)")


def queue_running(run: GenerationRun, backend: Backend, *, tracker: ProgressTracker | None, live: bool) -> None:
    """ComfyUI runs the prompt: EXECUTING when its events arrive, else UNTRACKED (never a phase that is
    not true, such as waiting in the queue)."""
    if not live:
        queue_untracked(run, backend)
        return
    if run.relay.state.phase not in (Phase.EXECUTING, Phase.SAVING):
        snap = tracker.snapshot if tracker is not None else None
        if snap is None or snap.node is None:
            run.relay.queue_progress(phase=Phase.EXECUTING, queue_position=None)
        else:
            run.relay.queue_progress(**_executing(snap), queue_position=None)


def queue_untracked(run: GenerationRun, backend: Backend) -> None:
    run.relay.queue_progress(
        phase=Phase.UNTRACKED,
        reason=f"ComfyUI ({backend.name}) is running it; live progress is not available right now",
        queue_position=None,
    )


def _executing(snap: ProgressSnapshot) -> dict[str, Any]:
    """The progress fields of a snapshot taken while ComfyUI executes."""
    return {
        "phase": Phase.EXECUTING,
        "percent": snap.percent,
        "node": snap.node,
        "node_class": snap.node_class,
        "step": snap.step,
        "max_steps": snap.max_steps,
    }


async def follow_elsewhere(
    run: GenerationRun, backend: Backend, events: PromptEvents, client_id: str | None, *, running: bool
) -> None:
    """Follow a prompt on a socket of its submitter's client id (ComfyUI sends its execution messages
    there only); without one (`events`, the backend's own socket), from /queue and /history."""
    if running:
        queue_untracked(run, backend)
    else:
        run.relay.queue_progress(phase=Phase.BACKEND_QUEUE)
    if client_id is None:
        await follow(run, backend, events, socket=backend.socket, started=running, live=False)
        return
    socket = backend.follow(client_id=client_id, prompt_id=run.prompt_id)
    try:
        async with socket.subscribe(run.prompt_id) as own:
            await socket.start()  # its first event is Reconnected: /queue is asked, then it goes live
            await follow(run, backend, own, socket=socket, started=running, live=False)
    finally:
        await socket.close()


async def cancel_on_backend(run: GenerationRun, client: ComfyClient, *, started: bool = False) -> bool:
    """Delete the prompt if it waits, interrupt it if it runs. True when it is gone already.

    Known to run (`started`: its execution_start came and no end yet), it is interrupted at
    once: `POST /interrupt {"prompt_id": id}` stops only that prompt and ignores it once it is
    not the one running (recording 06); its end arrives as an event. Otherwise the delete goes
    first, before asking where the prompt is: `POST /queue {"delete": [id]}` only touches
    pending prompts and ignores a running or unknown id (recording 07), so a waiting prompt is
    gone one round trip sooner.
    """
    if started:
        await client.interrupt(run.prompt_id)
        return False
    await client.delete_from_queue([run.prompt_id])
    queue = await client.queue()
    position = queue.position(run.prompt_id)
    if position is None:
        return (await client.history(run.prompt_id)) is None
    if position > 0:
        await client.delete_from_queue([run.prompt_id])
        return True
    await client.interrupt(run.prompt_id)
    return False


async def remove_prompt(run: GenerationRun, client: ComfyClient) -> None:
    """Take the prompt off the backend, if it can be reached (a run that lost its generation)."""
    with contextlib.suppress(ComfyError):
        await cancel_on_backend(run, client)
