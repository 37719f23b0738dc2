"""Helpers to drive the fake the way the recorder drove ComfyUI, and to compare what comes back."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx

from comfy.fake.server import FakeHandle
from tests.fake.recordings import Recording, shape
from tests.fake.wire import Frame, Socket, open_socket

PROGRESS_TYPES = ("progress", "progress_state", "binary:1", "binary:4")


def fast(prompt: dict[str, Any], delay: float = 0.01) -> dict[str, Any]:
    """The recorded workflow with SlowProgress sleeping at most `delay` per step."""
    result = copy.deepcopy(prompt)
    for node in result.values():
        if node.get("class_type") == "SlowProgress":
            node["inputs"]["delay"] = min(delay, node["inputs"]["delay"])
    return result


async def wait_history(http: httpx.AsyncClient, prompt_id: str) -> dict[str, Any]:
    async def poll() -> dict[str, Any]:
        while True:
            entry: dict[str, Any] = (await http.get(f"/history/{prompt_id}")).json()
            if entry:
                found: dict[str, Any] = entry[prompt_id]
                return found
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(poll(), 10.0)


async def warm_cache(http: httpx.AsyncClient, recording: Recording, prompt: dict[str, Any]) -> None:
    """Run the nodes the recording found cached, so the fake's cache starts where ComfyUI's was."""
    cached = recording.cached_nodes()[0] if recording.cached_nodes() else []
    if not cached:
        return
    warm = {node_id: prompt[node_id] for node_id in cached}
    warm["warm"] = {"class_type": "PreviewImage", "inputs": {"images": [cached[-1], 0]}}
    answer = await http.post("/prompt", json={"prompt": warm})
    assert answer.status_code == 200, answer.text
    await wait_history(http, answer.json()["prompt_id"])


def assert_http_like(response: httpx.Response, recorded: dict[str, Any], *, keyed_by_id: bool = False) -> None:
    assert response.status_code == recorded["status"]
    assert response.headers.get("content-type", "") == recorded["content_type"]
    if "json" in recorded:
        got, want = response.json(), recorded["json"]
        if keyed_by_id:
            got, want = list(got.values()), list(want.values())
        assert shape(got) == shape(want)
    elif "text" in recorded:
        assert response.text == recorded["text"]


def assert_same_messages(got: list[Frame], recorded: list[Frame], *, skip: tuple[str, ...] = ()) -> None:
    """Message by message: the same types in the same order, each with the keys of the recorded one."""
    kept = [frame for frame in got if frame["type"] not in skip]
    wanted = [frame for frame in recorded if frame["type"] not in skip]
    got_types, wanted_types = [f["type"] for f in kept], [f["type"] for f in wanted]
    assert got_types == wanted_types, f"got {got_types}\nrecorded {wanted_types}"
    for index, (frame, expected) in enumerate(zip(kept, wanted, strict=True)):
        assert shape(frame.get("data")) == shape(expected.get("data")), (index, frame, expected)


def status_counts(frames: list[Frame]) -> list[int]:
    return [f["data"]["status"]["exec_info"]["queue_remaining"] for f in frames if f["type"] == "status"]


OBSERVER = "B_observer"


class Sockets:
    """The submitter's socket and, where the recording had one, the observer's (another client id that
    never submits)."""

    def __init__(self, recording: Recording, client_id: str, submitter: Socket, observer: Socket | None) -> None:
        self.recording = recording
        self.client_id = client_id
        self.submitter = submitter
        self.observer = observer

    async def settle(self) -> None:
        """Wait until the observer has as many messages as it had in the recording."""
        if self.observer is not None:
            await self.observer.wait_count(len(self.recording.frames(OBSERVER)))

    def assert_observer_like_recorded(self, *, skip: tuple[str, ...] = ()) -> None:
        if self.observer is not None:
            assert_same_messages(self.observer.frames, self.recording.frames(OBSERVER), skip=skip)


@asynccontextmanager
async def recorded_sockets(
    comfy: FakeHandle, recording: Recording, *, feature_flags: bool = False
) -> AsyncIterator[Sockets]:
    client_id = str(uuid.uuid4())
    async with AsyncExitStack() as stack:
        submitter = await stack.enter_async_context(open_socket(comfy.url, client_id, feature_flags=feature_flags))
        observer = None
        if OBSERVER in recording.socket_names():
            observer = await stack.enter_async_context(
                open_socket(comfy.url, str(uuid.uuid4()), feature_flags=feature_flags)
            )
        sockets = Sockets(recording, client_id, submitter, observer)
        yield sockets
        await sockets.settle()


def _recorded_entry(recorded: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = next(iter(recorded["json"].values()))
    return entry


def assert_history_like(entry: dict[str, Any], recorded: dict[str, Any]) -> None:
    """A history entry as recorded: its keys, its extra_data's keys, and its status message by message
    (`[event, data]` pairs upstream, with data's keys; plain strings in the packaging, compared exactly)."""
    want = _recorded_entry(recorded)
    assert shape(entry) == shape(want)
    assert sorted(entry["prompt"][3]) == sorted(want["prompt"][3])
    got_status, want_status = entry["status"], want["status"]
    assert (got_status["status_str"], got_status["completed"]) == (want_status["status_str"], want_status["completed"])
    got_messages, want_messages = got_status["messages"], want_status["messages"]
    if want_messages and isinstance(want_messages[0], list):
        assert [m[0] for m in got_messages] == [m[0] for m in want_messages]
        for (_, data), (_, recorded_data) in zip(got_messages, want_messages, strict=True):
            assert shape(data) == shape(recorded_data)
    else:
        assert got_messages == want_messages
