"""Demultiplexing inside ComfySocket, fed recorded frames directly (no network).

The same paths over a real websocket are exercised in test_integration.py.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from comfy.errors import ComfyUnavailable
from comfy.events import (
    ComfyEvent,
    ExecutionStarted,
    Finished,
    NodeExecuting,
    Preview,
    Progress,
    QueueStatus,
    Reconnected,
    Succeeded,
)
from comfy.socket import ComfySocket, PromptEvents, _ws_url

from .conftest import load_recording

JPEG = b"\xff\xd8\xff\xe0fake"


async def _collect(sub: PromptEvents) -> list[ComfyEvent]:
    events: list[ComfyEvent] = []
    while sub.pending():
        events.append(await anext(sub))
    return events


def _feed(socket: ComfySocket, entries: list[dict[str, Any]], ws: str | None = None) -> None:
    for entry in entries:
        if ws is not None and entry.get("ws") != ws:
            continue
        if entry["kind"] == "text":
            socket._on_text(json.dumps(entry["data"]))
        elif entry["kind"] == "binary":
            meta = json.dumps(entry["data"]["metadata"]).encode()
            socket._on_binary(struct.pack(">II", 4, len(meta)) + meta + JPEG)


def test_ws_url() -> None:
    assert _ws_url("http://h:8188", "c d") == "ws://h:8188/ws?clientId=c%20d"
    assert _ws_url("https://h/comfy/", "c") == "wss://h/comfy/ws?clientId=c"


async def test_routes_one_prompt_with_previews_in_place() -> None:
    socket = ComfySocket("http://x", client_id="c")
    pid = "dbd44164-fef9-4179-91ec-f7395d98365f"
    sub = socket.subscribe(pid)
    other = socket.subscribe("someone-else")
    _feed(socket, load_recording("03_"))
    events = await _collect(sub)
    assert events[0] == ExecutionStarted(pid)
    assert events[-2:] == [Succeeded(pid), Finished(pid)]
    kinds = [type(e).__name__ for e in events if isinstance(e, Preview | Progress)]
    # each preview arrives just before its progress; nothing was consumed in between, so
    # latest-wins folds the four previews into the slot of the first
    assert kinds[0] == "Preview" and kinds.count("Preview") == 1 and kinds.count("Progress") == 4
    assert not any(isinstance(e, QueueStatus) for e in events)
    assert other.pending() == 0
    assert socket.queue_remaining == 0 and socket.current_prompt is None


async def test_previews_not_folded_when_consumed() -> None:
    socket = ComfySocket("http://x", client_id="c")
    sub = socket.subscribe("p")
    socket._on_text(json.dumps({"type": "execution_start", "data": {"prompt_id": "p"}}))
    assert await anext(sub) == ExecutionStarted("p")
    for i in range(3):
        socket._on_binary(struct.pack(">II", 1, 1) + bytes([i]))  # type 1: attributed to "p"
        assert await anext(sub) == Preview("p", None, bytes([i]), "image/jpeg")
    socket._on_binary(struct.pack(">II", 1, 2) + b"a")
    socket._on_binary(struct.pack(">II", 1, 2) + b"b")
    assert await anext(sub) == Preview("p", None, b"b", "image/png")
    assert sub.pending() == 0


async def test_reconnect_replay_without_prompt_id_is_attributed() -> None:
    entries = load_recording("09_")
    pid = "47278394-8376-43e4-86bb-abd4d6b982cb"
    socket = ComfySocket("http://x", client_id="c")
    sub = socket.subscribe(pid)
    _feed(socket, [e for e in entries if e["t_ms"] < 1342.7], ws="A_submitter")
    before = await _collect(sub)
    assert before[-1] == Progress(pid, "2", 4, 12)
    # the connection drops and comes back; the server replays `executing` without a prompt_id
    socket.connected.clear()
    socket._on_open(None)  # type: ignore[arg-type]
    _feed(socket, entries, ws="A2_same_clientId_reconnect")
    after = await _collect(sub)
    assert after[:2] == [Reconnected(), NodeExecuting(pid, "2")]
    assert next(e for e in after if isinstance(e, Progress)) == Progress(pid, "2", 6, 12)
    assert after[-1] == Finished(pid)


async def test_listeners_and_unsubscribe() -> None:
    socket = ComfySocket("http://x", client_id="c")
    seen: list[ComfyEvent] = []
    remove = socket.add_listener(seen.append)
    sub = socket.subscribe("p")
    socket._on_text(json.dumps({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 3}}}}))
    socket._on_text(json.dumps({"type": "execution_start", "data": {"prompt_id": "p"}}))
    socket._on_text("not json")
    socket._on_text(json.dumps({"type": "progress", "data": {"prompt_id": "p"}}))  # malformed: skipped
    assert seen == [QueueStatus(3), ExecutionStarted("p")]
    remove()
    async with sub:
        assert await anext(sub) == ExecutionStarted("p")
    assert socket._subs == {}
    with pytest.raises(StopAsyncIteration):
        await anext(sub)
    socket._on_text(json.dumps({"type": "execution_success", "data": {"prompt_id": "p"}}))
    assert len(seen) == 2


async def test_close_ends_subscriptions_with_unavailable() -> None:
    socket = ComfySocket("http://x", client_id="c")
    sub = socket.subscribe("p")
    await socket.close()
    for _ in range(2):  # and keeps ending them
        with pytest.raises(ComfyUnavailable):
            await anext(sub)
