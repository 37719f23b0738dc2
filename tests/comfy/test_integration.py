"""ComfyClient and ComfySocket against the fake ComfyUI, over real HTTP and websockets."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from comfy.catalog import Catalog
from comfy.client import ComfyClient, HistoryEntry
from comfy.errors import ComfyUnavailable, PromptValidationError
from comfy.events import (
    ComfyEvent,
    Disconnected,
    ExecutionStarted,
    Failed,
    Finished,
    Interrupted,
    NodeExecuting,
    NodeOutput,
    NodesCached,
    Preview,
    Progress,
    Reconnected,
    Succeeded,
)
from comfy.progress import ProgressTracker
from comfy.socket import ComfySocket
from comfy.templates import build_workflow, load_templates, validate_params

server = pytest.importorskip("comfy.fake.server")
FakeConfig = server.FakeConfig
running_fake = server.running_fake

TIMEOUT = 20.0


class Backend:
    def __init__(self, url: str, client: ComfyClient, socket: ComfySocket, catalog: Catalog) -> None:
        self.url = url
        self.client = client
        self.socket = socket
        self.catalog = catalog

    def workflow(self, **raw: Any) -> dict[str, Any]:
        template = load_templates()["txt2img"]
        params = validate_params(template, {"prompt": "a lighthouse", **raw}, catalog=self.catalog)
        return build_workflow(template, params, filename_prefix=f"test/{uuid.uuid4().hex[:8]}")

    async def submit(self, workflow: dict[str, Any]) -> str:
        prompt_id = str(uuid.uuid4())
        await self.client.submit(workflow, prompt_id=prompt_id, client_id=self.socket.client_id)
        return prompt_id


async def _backend(config: Any, *, feature_flags: bool = True) -> AsyncIterator[Backend]:
    async with (
        running_fake(config) as fake,
        ComfyClient(fake.url, timeout=10) as client,
        ComfySocket(fake.url, client_id=str(uuid.uuid4()), feature_flags=feature_flags) as socket,
    ):
        await socket.wait_connected(TIMEOUT)
        yield Backend(fake.url, client, socket, await client.object_info())


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async for b in _backend(FakeConfig(step_time=0.01)):
        yield b


async def _until_finished(events: AsyncIterator[ComfyEvent]) -> list[ComfyEvent]:
    seen: list[ComfyEvent] = []
    async with asyncio.timeout(TIMEOUT):
        async for event in events:
            seen.append(event)
            if isinstance(event, Finished):
                break
    return seen


async def _history(client: ComfyClient, prompt_id: str) -> HistoryEntry:
    for _ in range(int(TIMEOUT / 0.02)):
        entry = await client.history(prompt_id)
        if entry is not None:
            return entry
        await asyncio.sleep(0.02)
    raise AssertionError(f"{prompt_id} never reached the history")


async def test_success_end_to_end(backend: Backend) -> None:
    assert backend.catalog.checkpoints and "KSampler" in backend.catalog.node_classes
    workflow = backend.workflow(steps=5, seed=7, width=64, height=64, batch_size=2)
    tracker = ProgressTracker(workflow)
    prompt_id = str(uuid.uuid4())
    async with backend.socket.subscribe(prompt_id) as events:
        client_id = backend.socket.client_id
        submitted = await backend.client.submit(workflow, prompt_id=prompt_id, client_id=client_id)
        assert submitted.prompt_id == prompt_id
        seen = await _until_finished(events)
    percents = [tracker.apply(e).percent for e in seen]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert seen[0] == ExecutionStarted(prompt_id)
    assert [e.value for e in seen if isinstance(e, Progress)] == [1, 2, 3, 4, 5]
    assert all(e.node == "3" and e.max == 5 for e in seen if isinstance(e, Progress))
    previews = [e for e in seen if isinstance(e, Preview)]
    assert previews and all(p.prompt_id == prompt_id and p.node == "3" for p in previews)
    assert previews[0].image[:2] == b"\xff\xd8"
    outputs = [e for e in seen if isinstance(e, NodeOutput)]
    assert len(outputs) == 1 and len(outputs[0].images) == 2
    assert Succeeded(prompt_id) in seen
    assert NodeExecuting(prompt_id, "9") in seen

    entry = await _history(backend.client, prompt_id)
    assert entry.succeeded and entry.error is None and entry.images == outputs[0].images
    png = await backend.client.view(entry.images[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (await backend.client.queue()).position(prompt_id) is None


async def test_cached_rerun(backend: Backend) -> None:
    workflow = backend.workflow(steps=3, seed=11)
    first = str(uuid.uuid4())
    async with backend.socket.subscribe(first) as events:
        await backend.client.submit(workflow, prompt_id=first, client_id=backend.socket.client_id)
        await _until_finished(events)
    second = str(uuid.uuid4())
    async with backend.socket.subscribe(second) as events:
        await backend.client.submit(workflow, prompt_id=second, client_id=backend.socket.client_id)
        seen = await _until_finished(events)
    cached = next(e for e in seen if isinstance(e, NodesCached))
    assert set(cached.nodes) == set(workflow)
    assert not any(isinstance(e, Progress) for e in seen)
    assert any(isinstance(e, NodeOutput) for e in seen) and Succeeded(second) in seen
    tracker = ProgressTracker(workflow)
    assert [tracker.apply(e) for e in seen][-1].percent == 100.0


async def test_interrupt_running_prompt(backend: Backend) -> None:
    workflow = backend.workflow(steps=150)
    prompt_id = str(uuid.uuid4())
    async with backend.socket.subscribe(prompt_id) as events:
        await backend.client.submit(workflow, prompt_id=prompt_id, client_id=backend.socket.client_id)
        seen: list[ComfyEvent] = []
        async with asyncio.timeout(TIMEOUT):
            async for event in events:
                seen.append(event)
                if isinstance(event, Progress):
                    await backend.client.interrupt("not-this-one")  # answers 200, does nothing
                    await backend.client.interrupt(prompt_id)
                    break
        seen += await _until_finished(events)
    interrupted = [e for e in seen if isinstance(e, Interrupted)]
    assert interrupted == [Interrupted(prompt_id, "3")]
    assert not any(isinstance(e, Succeeded) for e in seen)
    entry = await _history(backend.client, prompt_id)
    assert entry.interrupted and entry.error is None and not entry.succeeded


async def _queue_delete(backend: Backend) -> None:
    running = await backend.submit(backend.workflow(steps=150))
    pending = await backend.submit(backend.workflow(steps=2))
    for _ in range(int(TIMEOUT / 0.01)):
        queue = await backend.client.queue()
        if queue.position(running) == 0:
            break
        await asyncio.sleep(0.01)
    assert queue.position(pending) == 1
    assert [i.prompt_id for i in queue.pending] == [pending]
    assert queue.running[0].client_id == backend.socket.client_id
    assert queue.pending[0].number > queue.running[0].number
    # Deleting a running or an unknown prompt answers 200 and changes nothing (recording 07): the
    # worker deletes first on a cancel and only then asks where the prompt is.
    await backend.client.delete_from_queue([running, str(uuid.uuid4())])
    queue = await backend.client.queue()
    assert queue.position(running) == 0 and queue.position(pending) == 1
    await backend.client.delete_from_queue([pending])
    queue = await backend.client.queue()
    assert queue.position(pending) is None and queue.position(running) == 0
    third = await backend.submit(backend.workflow(steps=2))
    await backend.client.clear_queue()
    queue = await backend.client.queue()
    assert queue.pending == () and queue.position(third) is None
    await backend.client.interrupt(running)
    await _history(backend.client, running)
    assert await backend.client.history(pending) is None


async def test_queue_delete_object_form(backend: Backend) -> None:
    await _queue_delete(backend)


async def test_queue_delete_array_form() -> None:
    async for backend in _backend(FakeConfig(step_time=0.01, queue_array_form=True)):
        await _queue_delete(backend)


async def test_execution_error() -> None:
    async for backend in _backend(FakeConfig(step_time=0.01, execution_error_node_class="VAEDecode")):
        workflow = backend.workflow(steps=2)
        prompt_id = str(uuid.uuid4())
        async with backend.socket.subscribe(prompt_id) as events:
            await backend.client.submit(workflow, prompt_id=prompt_id, client_id=backend.socket.client_id)
            seen = await _until_finished(events)
        failed = next(e for e in seen if isinstance(e, Failed))
        assert (failed.node_id, failed.node_type) == ("8", "VAEDecode")
        assert failed.exception_message
        assert not any(isinstance(e, Succeeded) for e in seen)
        entry = await _history(backend.client, prompt_id)
        assert entry.error is not None and not entry.succeeded and not entry.interrupted


async def test_validation_errors(backend: Backend) -> None:
    good = backend.workflow()
    cases: list[tuple[dict[str, Any], str, tuple[str | None, str | None]]] = []

    unknown = {**good, "3": {**good["3"], "class_type": "NoSuchSampler"}}
    cases.append((unknown, "invalid_prompt", ("3", None)))  # upstream's type; the node comes from its details

    missing = {k: {**v, "inputs": dict(v["inputs"])} for k, v in good.items()}
    del missing["5"]["inputs"]["width"]
    cases.append((missing, "prompt_outputs_failed_validation", ("5", "width")))

    bad_value = {k: {**v, "inputs": dict(v["inputs"])} for k, v in good.items()}
    bad_value["3"]["inputs"]["steps"] = 0
    cases.append((bad_value, "prompt_outputs_failed_validation", ("3", "steps")))

    bad_choice = {k: {**v, "inputs": dict(v["inputs"])} for k, v in good.items()}
    bad_choice["4"]["inputs"]["ckpt_name"] = "nope.safetensors"
    cases.append((bad_choice, "prompt_outputs_failed_validation", ("4", "ckpt_name")))

    no_outputs = {k: v for k, v in good.items() if k != "9"}
    cases.append((no_outputs, "prompt_no_outputs", (None, None)))

    for workflow, error_type, (node_id, input_name) in cases:
        with pytest.raises(PromptValidationError) as info:
            await backend.submit(workflow)
        error = info.value
        assert error.error_type == error_type, error
        assert not error.retryable
        if node_id is not None:
            assert error.node_errors, error
            assert error.node_errors[0].node_id == node_id
            if input_name is not None:
                assert error.node_errors[0].input_name == input_name
        else:
            assert error.node_errors == []


async def test_http_500_is_transient() -> None:
    async for backend in _backend(FakeConfig(step_time=0.01, submit_http_500=1)):
        workflow = backend.workflow(steps=1)
        prompt_id = str(uuid.uuid4())
        with pytest.raises(ComfyUnavailable):
            await backend.client.submit(workflow, prompt_id=prompt_id, client_id="c")
        submitted = await backend.client.submit(workflow, prompt_id=prompt_id, client_id="c")
        assert submitted.prompt_id == prompt_id


async def test_ws_drop_reconnects_and_reconciles_from_history() -> None:
    async for backend in _backend(FakeConfig(step_time=0.02, drop_ws_mid_run=1)):
        workflow = backend.workflow(steps=10)
        prompt_id = str(uuid.uuid4())
        outcome: HistoryEntry | None = None
        seen: list[ComfyEvent] = []
        async with backend.socket.subscribe(prompt_id) as events:
            await backend.client.submit(workflow, prompt_id=prompt_id, client_id=backend.socket.client_id)
            async with asyncio.timeout(TIMEOUT):
                async for event in events:
                    seen.append(event)
                    if isinstance(event, Reconnected):
                        # what a worker does: the socket was down, ask /history and /queue
                        outcome = await backend.client.history(prompt_id)
                        queue = await backend.client.queue()
                        if outcome is not None or prompt_id not in queue:
                            break
                    if isinstance(event, Finished):
                        break
        assert Reconnected() in seen
        assert backend.socket.connections == 2
        entry = outcome or await _history(backend.client, prompt_id)
        assert entry.succeeded and entry.images


async def test_a_dropped_socket_says_so_at_once_then_reconnects() -> None:
    """`Disconnected` when the close happens (a worker asks /queue then), `Reconnected` when it is back."""
    async for backend in _backend(FakeConfig(step_time=0.02, drop_ws_mid_run=1)):
        prompt_id = str(uuid.uuid4())
        seen: list[ComfyEvent] = []
        async with backend.socket.subscribe(prompt_id) as events:
            await backend.client.submit(
                backend.workflow(steps=10), prompt_id=prompt_id, client_id=backend.socket.client_id
            )
            async with asyncio.timeout(TIMEOUT):
                async for event in events:
                    seen.append(event)
                    if isinstance(event, Reconnected | Finished):
                        break
        markers = [e for e in seen if isinstance(e, Disconnected | Reconnected)]
        assert markers == [Disconnected(), Reconnected()], seen
        assert not backend.socket.down


async def test_a_prompt_is_followed_under_the_client_id_it_was_submitted_with() -> None:
    """What a worker that takes over does (upstream recording 13): the submitter's socket is gone; a socket
    with the same client id, opened to follow the prompt, gets its node at once, then every later step."""
    async for backend in _backend(FakeConfig(step_time=0.05)):
        submitter = ComfySocket(backend.url, client_id=f"dead-{uuid.uuid4().hex[:8]}")
        await submitter.start()
        await submitter.wait_connected(TIMEOUT)
        prompt_id = str(uuid.uuid4())
        async with submitter.subscribe(prompt_id) as events:
            await backend.client.submit(backend.workflow(steps=30), prompt_id=prompt_id, client_id=submitter.client_id)
            async with asyncio.timeout(TIMEOUT):
                async for event in events:
                    if isinstance(event, Progress) and event.value >= 3:
                        break
        await submitter.close()  # the worker died
        assert not any(isinstance(e, Progress) for e in await _drain(backend.socket, prompt_id, 0.3)), (
            "another client id hears nothing of it"
        )
        follower = ComfySocket(backend.url, client_id=submitter.client_id, follows=prompt_id)
        async with follower.subscribe(prompt_id) as events:
            await follower.start()
            try:
                seen = await _until_finished(events)
            finally:
                await follower.close()
        assert seen[0] == Reconnected()
        assert isinstance(seen[1], NodeExecuting) and seen[1].prompt_id == prompt_id, seen[:3]
        steps = [e.value for e in seen if isinstance(e, Progress)]
        assert steps and steps == list(range(steps[0], 31)), steps
        assert Succeeded(prompt_id) in seen


async def _drain(socket: ComfySocket, prompt_id: str, seconds: float) -> list[ComfyEvent]:
    """What `socket` hears of `prompt_id` for a while (a negative check: nothing is to come)."""
    seen: list[ComfyEvent] = []
    async with socket.subscribe(prompt_id) as events:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                async for event in events:
                    seen.append(event)
    return seen


async def test_legacy_type1_previews_are_attributed() -> None:
    async for backend in _backend(FakeConfig(step_time=0.01), feature_flags=False):
        workflow = backend.workflow(steps=4)
        prompt_id = str(uuid.uuid4())
        async with backend.socket.subscribe(prompt_id) as events:
            await backend.client.submit(workflow, prompt_id=prompt_id, client_id=backend.socket.client_id)
            seen = await _until_finished(events)
        previews = [e for e in seen if isinstance(e, Preview)]
        assert previews
        assert all(p.prompt_id == prompt_id and p.node is None and p.mime == "image/jpeg" for p in previews)


async def test_system_stats_and_unavailable(backend: Backend) -> None:
    stats = await backend.client.system_stats()
    assert stats.comfyui_version and stats.devices
    socket = ComfySocket("http://127.0.0.1:9", client_id="c", backoff_initial=0.01, backoff_max=0.05)
    async with socket:
        with pytest.raises(ComfyUnavailable):
            await socket.wait_connected(0.2)


async def test_one_socket_many_prompts(backend: Backend) -> None:
    workflows = [backend.workflow(steps=3, seed=i) for i in range(3)]
    prompt_ids = [str(uuid.uuid4()) for _ in workflows]
    subs = [backend.socket.subscribe(p) for p in prompt_ids]
    try:
        for prompt_id, workflow in zip(prompt_ids, workflows, strict=True):
            await backend.client.submit(workflow, prompt_id=prompt_id, client_id=backend.socket.client_id)
        results = await asyncio.gather(*(_until_finished(s) for s in subs))
    finally:
        for sub in subs:
            sub.close()
    for prompt_id, seen in zip(prompt_ids, results, strict=True):
        assert {getattr(e, "prompt_id", prompt_id) for e in seen} == {prompt_id}
        assert Succeeded(prompt_id) in seen
        assert [e.value for e in seen if isinstance(e, Progress)] == [1, 2, 3]
    assert backend.socket._subs == {}
