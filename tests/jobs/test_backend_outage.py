"""ComfyUI goes away mid-run: the generation waits visibly (BACKEND_WAIT, not an attempt) and goes on
when it is back, or fails with BACKEND_UNAVAILABLE once its deadline has passed.

The ComfyUI here is the fake in a process of its own, killed and started again on the same port: as a
real restart, it comes back with an empty queue and history.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from bench.proxy import cuttable_proxy
from comfy.fake.server import FakeHandle
from graph.app import create_app
from jobs.worker.app import build_worker
from jobs.worker.submit import prompt_id_for
from settings import Settings
from tests.stack import CREATE, GraphQLClient, Subscription, serve

EVENTS = """
subscription($id: ID!) { generationEvents(id: $id, after: 0) {
  kind at terminal status attempt
  error { code message retryable }
  progress { phase percent step reason retryAt deadlineAt }
} }
"""
GENERATION = "query($id: ID!) { generation(id: $id) { status attempt error { code } progress { phase reason } } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class FakeProcess:
    """A fake ComfyUI (upstream dialect) in its own process on a fixed port: started, killed, started again."""

    def __init__(self, port: int, *, step_time: float) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._args = ["--host", "127.0.0.1", "--port", str(port), "--step-time", str(step_time)]
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAFELIGHT_")}
        env["SAFELIGHT_LOG_LEVEL"] = "WARNING"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "safelight.cli", "fake-comfy", *self._args, env=env, start_new_session=True
        )
        self._process = process
        async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(30):
            while True:
                if process.returncode is not None:
                    raise AssertionError(f"the fake exited with {process.returncode}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/system_stats")).status_code == 200:
                        return
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
            await process.wait()

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as http:
            stats: dict[str, Any] = (await http.get(f"{self.url}/_fake/stats")).json()
            return stats


@pytest.fixture
async def comfy() -> AsyncIterator[FakeProcess]:
    fake = FakeProcess(_free_port(), step_time=0.05)
    await fake.start()
    yield fake
    await fake.kill()


@asynccontextmanager
async def stack(
    stack_settings: Settings, make_client: Callable[..., Awaitable[GraphQLClient]], comfy_url: str, **settings: Any
) -> AsyncIterator[GraphQLClient]:
    """An API (its catalogue from the session's fake) and an in-process worker on `comfy_url`, on a
    namespace of their own."""
    namespace = f"outage-{uuid.uuid4().hex[:8]}"
    worker_settings = stack_settings.model_copy(
        update={"namespace": namespace, "comfyui_urls": (comfy_url,), **settings}
    )
    user = await make_client()
    worker = build_worker(worker_settings, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        async with serve(create_app(stack_settings.model_copy(update={"namespace": namespace}))) as url:
            api = GraphQLClient(url, user.token)
            try:
                yield api
            finally:
                await api.aclose()
    finally:
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until(sub: Subscription, seen: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]) -> None:
    while True:
        data = await sub.next(120)
        assert data is not None, f"completed early: {seen[-5:]}"
        event = data["generationEvents"]
        seen.append(event)
        if predicate(event):
            return


def _executing(step: int) -> Callable[[dict[str, Any]], bool]:
    def check(event: dict[str, Any]) -> bool:
        progress = event["progress"] or {}
        return event["kind"] == "PROGRESS" and progress.get("phase") == "EXECUTING" and (progress["step"] or 0) >= step

    return check


def _waiting(event: dict[str, Any]) -> bool:
    return event["kind"] == "PROGRESS" and (event["progress"] or {}).get("phase") == "BACKEND_WAIT"


@pytest.mark.parametrize("outage_s", [pytest.param(3.0, id="3s"), pytest.param(60.0, id="60s", marks=pytest.mark.slow)])
async def test_comfyui_restart_mid_run_waits_visibly_then_succeeds(
    stack_settings: Settings,
    make_client: Callable[..., Awaitable[GraphQLClient]],
    comfy: FakeProcess,
    outage_s: float,
) -> None:
    """Longer than the old budget (5 attempts in ~13 s) when 60 s: waiting for a backend is not an attempt."""
    seen: list[dict[str, Any]] = []
    async with stack(
        stack_settings, make_client, comfy.url, backend_wait_s=outage_s + 120, comfy_watchdog_s=3600
    ) as api:
        created = await api.query(
            CREATE, {"input": {"prompt": "through a restart", "width": 64, "height": 64, "steps": 60}}
        )
        gid = created["createGeneration"]["generation"]["id"]
        async with api.subscription(EVENTS, {"id": gid}) as sub:
            await _until(sub, seen, _executing(3))
            await comfy.kill()  # ComfyUI is gone, its queue with it
            await _until(sub, seen, _waiting)
            wait = seen[-1]
            during = (await api.query(GENERATION, {"id": gid}))["generation"]
            await asyncio.sleep(outage_s)  # the outage itself
            await comfy.start()
            rest = [e["generationEvents"] for e in await sub.collect(wait_s=120)]
        final = (await api.query(GENERATION, {"id": gid}))["generation"]
    stats = await comfy.stats()
    progress = wait["progress"]
    assert "unreachable" in progress["reason"], progress
    assert wait["at"] <= progress["retryAt"] <= progress["deadlineAt"]
    assert progress["deadlineAt"] >= wait["at"] + outage_s + 100, "the configured wait, not an attempt's delay"
    assert during["status"] == "RUNNING" and during["progress"]["phase"] == "BACKEND_WAIT", during
    assert "unreachable" in during["progress"]["reason"], "the row says why, as the event did"
    events = seen + rest
    assert events[-1]["status"] == "SUCCEEDED" and events[-1]["error"] is None, events[-1]
    assert final == {"status": "SUCCEEDED", "attempt": 2, "error": None, "progress": {"phase": "DONE", "reason": None}}
    # The restarted ComfyUI had lost the prompt: one new attempt ran it, once; the wait used none.
    assert stats["executions"] == {prompt_id_for(uuid.UUID(gid), 2): 1}
    retried = next(i for i, e in enumerate(events) if e["kind"] == "STATUS" and e["attempt"] == 2)
    retry = next(e for e in events[retried:] if e["kind"] == "PROGRESS")["progress"]
    assert retry["phase"] == "RETRY_WAIT" and "vanished" in retry["reason"] and retry["retryAt"], retry
    waits = [e["progress"] for e in events[:retried] if _waiting(e)]
    assert {p["deadlineAt"] for p in waits} == {progress["deadlineAt"]}, "one outage, one deadline"
    assert [p["retryAt"] for p in waits] == sorted(p["retryAt"] for p in waits)


async def test_no_backend_until_the_deadline_fails_with_backend_unavailable(
    stack_settings: Settings, make_client: Callable[..., Awaitable[GraphQLClient]], comfy: FakeProcess
) -> None:
    """A short deadline: FAILED (BACKEND_UNAVAILABLE, retryable) only once it has passed, on attempt 1."""
    seen: list[dict[str, Any]] = []
    async with stack(stack_settings, make_client, comfy.url, backend_wait_s=2.0, comfy_watchdog_s=3600) as api:
        created = await api.query(
            CREATE, {"input": {"prompt": "nowhere to run", "width": 64, "height": 64, "steps": 60}}
        )
        gid = created["createGeneration"]["generation"]["id"]
        async with api.subscription(EVENTS, {"id": gid}) as sub:
            await _until(sub, seen, _executing(3))
            await comfy.kill()
            rest = [e["generationEvents"] for e in await sub.collect(wait_s=60)]
    events = seen + rest
    waits = [e for e in events if _waiting(e)]
    assert waits, "the wait is visible to subscribers"
    deadline = waits[0]["progress"]["deadlineAt"]
    last = events[-1]
    assert last["status"] == "FAILED" and last["attempt"] == 1, last
    assert last["error"]["code"] == "BACKEND_UNAVAILABLE" and last["error"]["retryable"] is True
    assert "unreachable" in last["error"]["message"] and "2 s" in last["error"]["message"], last["error"]
    assert last["at"] >= deadline, "not before the deadline"
    assert [e["status"] for e in events if e["kind"] == "STATUS"][-1:] == ["FAILED"]
    assert not any(e["status"] == "QUEUED" for e in rest if e["kind"] == "STATUS"), "no attempt was used"


CANCEL = "mutation($id: ID!) { cancelGeneration(id: $id) { __typename } }"


async def test_a_generation_waiting_for_a_backend_can_be_cancelled(
    stack_settings: Settings, make_client: Callable[..., Awaitable[GraphQLClient]], comfy: FakeProcess
) -> None:
    seen: list[dict[str, Any]] = []
    async with stack(stack_settings, make_client, comfy.url, backend_wait_s=600, comfy_watchdog_s=3600) as api:
        created = await api.query(CREATE, {"input": {"prompt": "never mind", "width": 64, "height": 64, "steps": 60}})
        gid = created["createGeneration"]["generation"]["id"]
        async with api.subscription(EVENTS, {"id": gid}) as sub:
            await _until(sub, seen, _executing(2))
            await comfy.kill()
            await _until(sub, seen, _waiting)
            assert (await api.query(CANCEL, {"id": gid}))["cancelGeneration"]["__typename"] == "GenerationPayload"
            rest = [e["generationEvents"] for e in await sub.collect(wait_s=60)]
    statuses = [e["status"] for e in rest if e["kind"] == "STATUS"]
    assert statuses == ["CANCELLING", "CANCELLED"], rest
    assert rest[-1]["error"] is None


async def test_a_network_cut_while_comfyui_runs_on_does_not_run_the_prompt_twice(
    stack_settings: Settings, make_client: Callable[..., Awaitable[GraphQLClient]], fake: FakeHandle
) -> None:
    """ComfyUI keeps its queue through the cut (only the network went): once it answers again the job finds its
    prompt in /queue or /history and follows it; nothing is submitted again and no attempt is used."""
    fake.config.step_time = 0.05
    host, _, port = fake.url.removeprefix("http://").partition(":")
    seen: list[dict[str, Any]] = []
    async with cuttable_proxy(host, int(port)) as proxy:
        comfy = f"http://127.0.0.1:{proxy.port}"
        async with stack(stack_settings, make_client, comfy, backend_wait_s=600, comfy_watchdog_s=3600) as api:
            created = await api.query(CREATE, {"input": {"prompt": "cut", "width": 64, "height": 64, "steps": 40}})
            gid = created["createGeneration"]["generation"]["id"]
            async with api.subscription(EVENTS, {"id": gid}) as sub:
                await _until(sub, seen, _executing(3))
                await proxy.cut()
                await _until(sub, seen, _waiting)
                await proxy.restore()
                rest = [e["generationEvents"] for e in await sub.collect(wait_s=60)]
    assert rest[-1]["status"] == "SUCCEEDED" and rest[-1]["attempt"] == 1, rest[-1]
    assert [e["status"] for e in rest if e["kind"] == "STATUS"] == ["SUCCEEDED"]
    prompt = prompt_id_for(uuid.UUID(gid), 1)
    assert fake.fake.stats.executions[prompt] == 1
    assert fake.fake.stats.executions[prompt_id_for(uuid.UUID(gid), 2)] == 0
    submits = [e for e in fake.fake.stats.events if e["event"] == "submit" and e["prompt_id"] == prompt]
    assert len(submits) == 1, "submitted once"
