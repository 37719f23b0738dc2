from __future__ import annotations

import json
import struct

import pytest

from comfy.errors import ComfyProtocolError
from comfy.events import (
    ExecutionStarted,
    Failed,
    Finished,
    Interrupted,
    NodeExecuting,
    NodeOutput,
    NodesCached,
    OutputFile,
    OutputImage,
    Preview,
    Progress,
    ProgressState,
    QueueStatus,
    Succeeded,
    parse_binary,
    parse_message,
)

from .conftest import RECORDINGS, load_recording, ws_messages

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 32


def test_every_recorded_message_parses() -> None:
    seen: set[type] = set()
    for path in sorted(RECORDINGS.glob("*.json")):
        for message in ws_messages(json.loads(path.read_text())):
            event = parse_message(message)
            if event is not None:
                seen.add(type(event))
    assert seen >= {
        ExecutionStarted,
        NodesCached,
        NodeExecuting,
        Progress,
        ProgressState,
        NodeOutput,
        Succeeded,
        Failed,
        Interrupted,
        Finished,
        QueueStatus,
    }


def test_normal_run_sequence() -> None:
    pid = "3b8d58a0-5b25-4ac1-b2ec-f05cb9d4995d"
    events = [parse_message(m) for m in ws_messages(load_recording("02_"))]
    lifecycle = [e for e in events if not isinstance(e, ProgressState | QueueStatus)]
    assert lifecycle == [
        ExecutionStarted(pid),
        NodesCached(pid, ()),
        NodeExecuting(pid, "1"),
        NodeExecuting(pid, "2"),
        NodeExecuting(pid, "3"),
        NodeOutput(
            pid,
            "3",
            (OutputImage("rec_blur_00001_.png", "", "output"),),
            (OutputFile("3", "rec_blur_00001_.png", "", "output", "image", 0),),
        ),
        Succeeded(pid),
        Finished(pid),
    ]


def test_status_and_feature_flags() -> None:
    messages = ws_messages(load_recording("03_"))
    assert parse_message(messages[0]) == QueueStatus(0)
    assert messages[1]["type"] == "feature_flags"
    assert parse_message(messages[1]) is None


def test_progress_and_progress_state() -> None:
    messages = ws_messages(load_recording("03_"))
    progress = [parse_message(m) for m in messages if m["type"] == "progress"]
    pid = "dbd44164-fef9-4179-91ec-f7395d98365f"
    assert progress == [Progress(pid, "2", v, 4, None) for v in (1, 2, 3, 4)]
    state = next(parse_message(m) for m in messages if m["type"] == "progress_state")
    assert isinstance(state, ProgressState)
    assert state.nodes["1"].state == "running"
    assert state.nodes["1"].max == 1.0


def test_progress_stamp_becomes_emitted_at() -> None:
    event = parse_message(
        {
            "type": "progress",
            "data": {"value": 1, "max": 2, "prompt_id": "p", "node": "3", "safelight_ts": 12.5},
        }
    )
    assert event == Progress("p", "3", 1, 2, 12.5)


def test_cached_resubmit_lists_every_node() -> None:
    events = [parse_message(m) for m in ws_messages(load_recording("05_"))]
    cached = [e for e in events if isinstance(e, NodesCached)]
    assert cached[-1].nodes == ("1", "2", "3", "4")
    # the output node's `executed` is replayed for the cached run
    after = events[events.index(cached[-1]) :]
    assert any(isinstance(e, NodeOutput) and e.node == "4" for e in after)
    assert not any(isinstance(e, Progress) for e in after)


def test_interrupted() -> None:
    events = [parse_message(m) for m in ws_messages(load_recording("06_"))]
    assert Interrupted("176bffbc-74f9-467b-b6a5-7a142a0560fc", "2") in events


def test_execution_error() -> None:
    events = [parse_message(m) for m in ws_messages(load_recording("10_"))]
    failed = next(e for e in events if isinstance(e, Failed))
    assert failed.node_id == "2"
    assert failed.node_type == "RaiseError"
    assert failed.exception_type == "RuntimeError"
    assert failed.exception_message == "boom from RaiseError\n"
    assert len(failed.traceback) == 7
    assert isinstance(events[-1], Finished)


def test_executing_without_prompt_id_uses_the_default() -> None:
    # recording 09: the same clientId reconnecting gets `executing {"node": "2"}` with no prompt_id
    replay = next(
        m for m in ws_messages(load_recording("09_"), "A2_same_clientId_reconnect") if m["type"] == "executing"
    )
    assert "prompt_id" not in replay["data"]
    assert parse_message(replay) is None
    assert parse_message(replay, "current") == NodeExecuting("current", "2")
    assert parse_message({"type": "executing", "data": {"node": None}}, "current") == Finished("current")


def test_unknown_and_malformed_messages() -> None:
    assert parse_message({"type": "crystools.monitor", "data": {}}) is None
    assert parse_message({"nothing": 1}) is None
    with pytest.raises(ComfyProtocolError):
        parse_message({"type": "progress", "data": {"prompt_id": "p", "node": "1"}})
    with pytest.raises(ComfyProtocolError):
        parse_message({"type": "executed", "data": "nope"})


def _type4(metadata: dict[str, object], image: bytes) -> bytes:
    meta = json.dumps(metadata).encode()
    return struct.pack(">II", 4, len(meta)) + meta + image


def test_binary_type4_from_recording() -> None:
    frames = [e["data"] for e in load_recording("03_") if e["kind"] == "binary"]
    assert len(frames) == 4
    for frame in frames:
        assert frame["event_type"] == 4
        raw = _type4(frame["metadata"], JPEG)
        preview = parse_binary(raw)
        assert preview == Preview("dbd44164-fef9-4179-91ec-f7395d98365f", "2", JPEG, "image/jpeg")


def test_binary_type1_carries_no_prompt() -> None:
    jpeg = struct.pack(">II", 1, 1) + JPEG
    png = struct.pack(">II", 1, 2) + b"\x89PNG\r\n\x1a\n"
    assert parse_binary(jpeg) == Preview(None, None, JPEG, "image/jpeg")
    assert parse_binary(png, "p") == Preview("p", None, b"\x89PNG\r\n\x1a\n", "image/png")


def test_binary_other_types_and_garbage() -> None:
    assert parse_binary(struct.pack(">II", 3, 0) + b"text") is None
    with pytest.raises(ComfyProtocolError):
        parse_binary(b"\x00\x00")
    with pytest.raises(ComfyProtocolError):
        parse_binary(struct.pack(">II", 4, 100) + b"{}")
    with pytest.raises(ComfyProtocolError):
        parse_binary(struct.pack(">II", 4, 3) + b"xyz")
