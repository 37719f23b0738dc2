"""Trying again: waiting for a backend (BACKEND_WAIT, not an attempt) and scheduling the next attempt
(RETRY_WAIT) after a transient failure.

When no backend can be reached, the run waits in phase BACKEND_WAIT (reason, next try, deadline) and
tries again with backoff, or as soon as a backend's websocket opens. After `backend_wait_s` it fails
with BACKEND_UNAVAILABLE. A transient failure of an attempt puts the generation back to QUEUED with the
next attempt's job deferred by exponential backoff, until `max_attempts`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from db.states import Phase, Status
from jobs.enqueue import enqueue_generation
from jobs.worker.outcomes import Cancelled, Permanent

if TYPE_CHECKING:
    from jobs.worker.run import GenerationRun

__all__ = ["BackendWait", "retry_or_fail"]

log = logging.getLogger(__name__)

_BACKEND_RETRY_MAX_S = 10.0  # the longest pause between tries while waiting for a backend


class BackendWait:
    """One run's wait for a reachable backend: when it gives up, and the tries so far."""

    def __init__(self, *, deadline: float | None = None) -> None:
        self.deadline = deadline  # unix time; set by the first wait of an outage (or the row, on a takeover)
        self.tries = 0
        self.reached = False  # a backend answered since the last wait: the next wait is a new outage

    async def wait(self, run: GenerationRun, reason: str) -> None:
        """Publish BACKEND_WAIT (reason, next try, deadline) and wait; past the deadline, FAILED."""
        settings = run.runtime.settings
        now = time.time()
        if self.reached:
            self.deadline, self.tries, self.reached = None, 0, False
        if self.deadline is None:
            self.deadline = now + settings.backend_wait_s
        if now >= self.deadline:
            raise Permanent(
                "BACKEND_UNAVAILABLE",
                f"No ComfyUI backend could be reached for {settings.backend_wait_s:.0f} s. Last: {reason}",
                retryable=True,
            )
        delay = min(_BACKEND_RETRY_MAX_S, max(settings.retry_base_delay_s, 0.05) * 2 ** min(self.tries, 16))
        delay *= random.uniform(0.5, 1.0)
        self.tries += 1
        retry_at = min(now + delay, self.deadline)
        if self.tries == 1:
            log.warning("generation %s: waiting up to %.0f s for a backend: %s", run.id, self.deadline - now, reason)
        run.relay.queue_progress(
            phase=Phase.BACKEND_WAIT,
            reason=reason,
            retry_at=round(retry_at, 3),
            deadline_at=round(self.deadline, 3),
            queue_position=None,
        )
        # The row first: whoever reacts to the event reads the wait there too.
        if not await run.relay.write_now():
            await run.check_still_ours()
        await run.relay.flush()
        cancel = asyncio.ensure_future(run.cancel_requested.wait())
        change = asyncio.ensure_future(run.runtime.backends.wait_for_change(retry_at - now))
        try:
            await asyncio.wait((cancel, change), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (cancel, change):
                task.cancel()
        if run.cancel_requested.is_set():
            # Unreachable, a prompt it may hold cannot be removed; a restarted ComfyUI has lost it.
            raise Cancelled


async def retry_or_fail(run: GenerationRun, reason: str) -> None:
    """A transient failure: QUEUED for the next attempt after a backoff, or FAILED after the last one."""
    settings = run.runtime.settings
    attempt = run.generation.attempt
    error = {"error_code": "BACKEND_UNAVAILABLE", "error_message": reason, "error_retryable": True}
    if attempt >= settings.max_attempts:
        await run.finish(Status.FAILED, {**error, "error_message": f"{reason} (after {attempt} attempts)"})
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
    change = await run.finish(Status.QUEUED, retry)
    if change.generation.status is Status.QUEUED:
        log.info("generation %s: attempt %d failed (%s); retry in %.1fs", run.id, attempt, reason, delay)
        runtime = run.runtime
        await enqueue_generation(runtime.redis, runtime.keys, generation_id=run.id, attempt=attempt + 1, defer_s=delay)
        # After the QUEUED event: when the next attempt starts and why (the row says it too).
        run.relay.seq = change.event.seq
        await run.relay.announce(phase=Phase.RETRY_WAIT, reason=why, retry_at=round(retry_at, 3), queue_position=None)
