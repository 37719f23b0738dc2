"""jobs.worker.retry's BackendWait: one outage's deadline, growing pauses between tries, the row written
before the event, a cancel ending the wait, and a new outage (after a backend answered) starting over.

The run around it is a stand-in holding what the wait touches (settings, relay, backends, cancel flag);
retry_or_fail is exercised end to end by tests/jobs/test_lifecycle.py and tests/jobs/test_backend_outage.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from db.states import Phase
from jobs.worker.outcomes import Cancelled, Lost, Permanent
from jobs.worker.retry import BackendWait


class Relay:
    def __init__(self, *, ours: bool = True) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.ours = ours

    def queue_progress(self, **changes: Any) -> None:
        self.calls.append(("queue", changes))

    async def write_now(self) -> bool:
        self.calls.append(("write", {}))
        return self.ours

    async def flush(self) -> None:
        self.calls.append(("flush", {}))


class Backends:
    def __init__(self, *, blocks: bool = False) -> None:
        self.timeouts: list[float] = []
        self.blocks = blocks
        self.waiting = asyncio.Event()

    async def wait_for_change(self, timeout: float) -> None:  # noqa: ASYNC109 (the pool's own signature)
        self.timeouts.append(timeout)
        self.waiting.set()
        if self.blocks:
            await asyncio.Event().wait()


def _run(*, relay: Relay | None = None, backends: Backends | None = None, wait_s: float = 600.0) -> Any:
    async def check_still_ours() -> None:
        raise Lost

    settings = SimpleNamespace(backend_wait_s=wait_s, retry_base_delay_s=1.0)
    return SimpleNamespace(
        id=uuid.uuid4(),
        runtime=SimpleNamespace(settings=settings, backends=backends or Backends()),
        relay=relay or Relay(),
        cancel_requested=asyncio.Event(),
        check_still_ours=check_still_ours,
    )


async def test_the_first_wait_sets_the_deadline_and_says_why_row_first() -> None:
    run = _run()
    wait = BackendWait()
    before = time.time()
    await wait.wait(run, "connection refused")
    assert wait.deadline is not None and before + 600 <= wait.deadline <= time.time() + 600
    assert [name for name, _ in run.relay.calls] == ["queue", "write", "flush"], "the row before the event"
    progress = run.relay.calls[0][1]
    assert (progress["phase"], progress["reason"], progress["queue_position"]) == (
        Phase.BACKEND_WAIT,
        "connection refused",
        None,
    )
    assert progress["deadline_at"] == round(wait.deadline, 3)
    (timeout,) = run.runtime.backends.timeouts
    assert 0.5 <= timeout <= 1.0 + 0.01
    assert before + 0.5 <= progress["retry_at"] <= time.time() + 1.0 + 0.01


async def test_pauses_double_up_to_ten_seconds_within_one_deadline() -> None:
    run = _run()
    wait = BackendWait()
    for _ in range(8):
        await wait.wait(run, "down")
    bases = [1, 2, 4, 8, 10, 10, 10, 10]
    timeouts = run.runtime.backends.timeouts
    assert all(base * 0.5 - 0.01 <= t <= base + 0.01 for t, base in zip(timeouts, bases, strict=True)), timeouts
    deadlines = {c["deadline_at"] for name, c in run.relay.calls if name == "queue"}
    assert len(deadlines) == 1, "one outage, one deadline"
    assert wait.tries == 8


async def test_past_the_deadline_the_generation_fails_as_retryable() -> None:
    wait = BackendWait(deadline=time.time() - 1)  # a takeover of a wait the row says is over
    with pytest.raises(Permanent) as failed:
        await wait.wait(_run(wait_s=30), "still refused")
    assert (failed.value.code, failed.value.retryable) == ("BACKEND_UNAVAILABLE", True)
    assert "30 s" in failed.value.message and "still refused" in failed.value.message


async def test_after_a_backend_answered_the_next_wait_is_a_new_outage() -> None:
    run = _run(wait_s=100)
    wait = BackendWait(deadline=time.time() - 1)
    wait.tries = 12
    wait.reached = True
    await wait.wait(run, "refused again")
    assert wait.deadline is not None and wait.deadline > time.time() + 90
    assert wait.tries == 1 and not wait.reached
    assert run.runtime.backends.timeouts[0] <= 1.0 + 0.01, "the pause starts small again"


async def test_a_cancel_ends_the_wait() -> None:
    run = _run(backends=Backends(blocks=True))
    waiting = asyncio.create_task(BackendWait().wait(run, "down"))
    await asyncio.wait_for(run.runtime.backends.waiting.wait(), 5)
    run.cancel_requested.set()
    with pytest.raises(Cancelled):
        await asyncio.wait_for(waiting, 5)


async def test_a_row_no_longer_ours_stops_the_wait_before_anything_is_published() -> None:
    run = _run(relay=Relay(ours=False))
    with pytest.raises(Lost):
        await BackendWait().wait(run, "down")
    assert [name for name, _ in run.relay.calls] == ["queue", "write"]
    assert run.runtime.backends.timeouts == []
