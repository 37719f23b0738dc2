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
    Disconnected,
    ExecutionStarted,
    Finished,
    NodeExecuting,
    Preview,
    Progress,
    ProgressState,
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


async def test_reconnect_replay_without_prompt_id_waits_for_the_running_prompt() -> None:
    """Recording 09: after a reconnect the server names the node but not the prompt; the socket keeps it
    until its consumer, having asked /queue, says which prompt runs (the one before the gap may be over)."""
    entries = load_recording("09_")
    pid = "47278394-8376-43e4-86bb-abd4d6b982cb"
    socket = ComfySocket("http://x", client_id="c")
    sub = socket.subscribe(pid)
    _feed(socket, [e for e in entries if e["t_ms"] < 1342.7], ws="A_submitter")
    before = await _collect(sub)
    assert before[-1] == Progress(pid, "2", 4, 12)
    socket._on_close()
    socket._on_open(None)  # type: ignore[arg-type]
    replay = [e for e in entries if e.get("ws") == "A2_same_clientId_reconnect"]
    named = next(i for i, e in enumerate(replay) if e["kind"] == "text" and "prompt_id" in e["data"]["data"])
    _feed(socket, replay[:named])
    assert await _collect(sub) == [Disconnected(), Reconnected()], "not attributed to a prompt that may be over"
    socket.mark_running(pid)
    assert await _collect(sub) == [NodeExecuting(pid, "2")]
    _feed(socket, replay[named:])
    after = await _collect(sub)
    assert next(e for e in after if isinstance(e, Progress)) == Progress(pid, "2", 6, 12)
    assert after[-1] == Finished(pid)


async def test_a_node_without_prompt_id_is_stale_once_a_message_names_the_prompt() -> None:
    """Recording 13 (upstream): `executing {node}` then `progress` naming the prompt; a late mark_running
    must not move the prompt back to the replayed node."""
    entries = load_recording("13_", upstream=True)
    pid = "7f442263-6f48-425c-bee4-c261184439c5"
    socket = ComfySocket("http://x", client_id="c")
    sub = socket.subscribe(pid)
    _feed(socket, entries, ws="A_submitter")
    assert (await _collect(sub))[-1] == Progress(pid, "2", 2, 14)
    socket._on_close()
    socket._on_open(None)  # type: ignore[arg-type]
    _feed(socket, entries, ws="A2_same_clientId_reconnect")
    after = await _collect(sub)
    assert after[:2] == [Disconnected(), Reconnected()]
    assert not any(isinstance(e, NodeExecuting) and e.node == "2" for e in after)
    assert next(e for e in after if isinstance(e, Progress)) == Progress(pid, "2", 10, 14)
    assert after[-1] == Finished(pid)
    socket.mark_running(pid)
    assert sub.pending() == 0


async def test_a_socket_that_follows_one_prompt_attributes_the_replayed_node_at_once() -> None:
    """A job that took a prompt over opens a socket with its submitter's client id, for that prompt."""
    entries = load_recording("13_", upstream=True)
    pid = "7f442263-6f48-425c-bee4-c261184439c5"
    socket = ComfySocket("http://x", client_id="f2f2cb61-185c-41f7-8bb9-9bcb7ecfccb0", follows=pid)
    sub = socket.subscribe(pid)
    socket._on_open(None)  # type: ignore[arg-type]
    _feed(socket, entries, ws="A2_same_clientId_reconnect")
    events = await _collect(sub)
    assert events[:2] == [Reconnected(), NodeExecuting(pid, "2")]
    assert events[2:4] == [ProgressState(pid, events[2].nodes), Progress(pid, "2", 10, 14)]  # type: ignore[union-attr]
    assert events[-1] == Finished(pid)


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
