"""The hand-written encoders of the frequent messages write exactly what json.dumps writes."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from comfy.fake import hub
from comfy.fake.hub import Connection, json_string, text_message

IDS = [
    "3",
    "10",
    "6c0f4a39-8c1e-4d43-9a2a-4b1a0c7c9d11",
    'quote " and \\ backslash',
    "ünïcødé ☃ \U0001f600",
    "\n\t\x00",
]
NUMBERS: list[float] = [0, 1, 10, -3, 2**70, 0.0, 1.0, 0.5, 1e-07, 1.5e300, -2.25, math.inf, -math.inf]


@pytest.mark.parametrize("value", NUMBERS)
def test_numbers(value: float) -> None:
    assert hub.json_number(value) == json.dumps(value)


def test_nan() -> None:
    assert hub.json_number(math.nan) == json.dumps(math.nan) == "NaN"


@pytest.mark.parametrize("text", IDS)
def test_strings(text: str) -> None:
    assert json_string(text) == json.dumps(text)


@pytest.mark.parametrize("remaining", [0, 1, 12345])
def test_status(remaining: int) -> None:
    data = {"status": {"exec_info": {"queue_remaining": remaining}}}
    assert hub.status_message(remaining) == text_message("status", data)


@pytest.mark.parametrize("node", IDS)
@pytest.mark.parametrize("prompt", IDS[1:4])
def test_executing(node: str, prompt: str) -> None:
    expected = text_message("executing", {"node": node, "display_node": node, "prompt_id": prompt})
    assert hub.executing_message(json_string(node), json_string(prompt)) == expected


@pytest.mark.parametrize(("value", "total"), [(1, 10), (10, 10), (0.0, 1.0), (3, 2.5)])
@pytest.mark.parametrize("stamp", [None, 1765132800.123456, 1e9])
@pytest.mark.parametrize("node", IDS[:2] + IDS[3:])
def test_progress(value: float, total: float, stamp: float | None, node: str) -> None:
    prompt = IDS[2]
    data: dict[str, object] = {"value": value, "max": total, "prompt_id": prompt, "node": node}
    if stamp is not None:
        data["safelight_ts"] = stamp
    got = hub.progress_message(value, total, json_string(node), json_string(prompt), stamp)
    assert got == text_message("progress", data)


@pytest.mark.parametrize("kind", ["execution_start", "execution_success"])
@pytest.mark.parametrize("prompt", IDS[2:5])
def test_prompt_events(kind: str, prompt: str) -> None:
    expected = text_message(kind, {"prompt_id": prompt, "timestamp": 1765132800123})
    assert hub.prompt_event_message(kind, json_string(prompt), 1765132800123) == expected


@pytest.mark.parametrize("nodes", [[], ["4"], ["4", "10", IDS[3], IDS[4]]])
def test_execution_cached(nodes: list[str]) -> None:
    expected = text_message("execution_cached", {"nodes": nodes, "prompt_id": IDS[2], "timestamp": 17})
    assert hub.execution_cached_message(nodes, json_string(IDS[2]), 17) == expected


@pytest.mark.parametrize("prompt", IDS[2:5])
def test_executing_done(prompt: str) -> None:
    expected = text_message("executing", {"node": None, "prompt_id": prompt})
    assert hub.executing_done_message(json_string(prompt)) == expected


def test_progress_state() -> None:
    prompt = IDS[3]
    states = [("4", "finished", 1.0, 1.0), (IDS[4], "running", 0.0, 1.0), ("3", "running", 7, 20)]
    nodes = {
        node: {
            "value": value,
            "max": total,
            "state": state,
            "node_id": node,
            "prompt_id": prompt,
            "display_node_id": node,
            "parent_node_id": None,
            "real_node_id": node,
        }
        for node, state, value, total in states
    }
    entries = [
        hub.node_state_entry(json_string(node), json_string(prompt), state, value, total)
        for node, state, value, total in states
    ]
    expected = text_message("progress_state", {"prompt_id": prompt, "nodes": nodes})
    assert hub.progress_state_message(json_string(prompt), entries) == expected
    assert hub.progress_state_message(json_string(prompt), []) == text_message(
        "progress_state", {"prompt_id": prompt, "nodes": {}}
    )


async def test_connection_hands_out_everything_waiting() -> None:
    connection = Connection("c")
    waiting = asyncio.create_task(connection.get_all())
    await asyncio.sleep(0)
    assert not waiting.done()
    connection.put("a")
    connection.put(b"b")
    connection.put(None)
    assert await asyncio.wait_for(waiting, 1) == ["a", b"b", None]  # in order, the close marker too
    connection.put("c")
    assert await connection.get_all() == ["c"]


async def test_connection_survives_a_cancelled_get() -> None:
    connection = Connection("c")
    waiting = asyncio.create_task(connection.get_all())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    connection.put("after")
    assert await asyncio.wait_for(connection.get_all(), 1) == ["after"]


async def test_one_connection_per_client_id() -> None:
    """A newer socket of a client id replaces the older; the older closing forgets the newer one only when
    removed by client id (upstream's `sockets.pop(sid)`), not otherwise (the packaging)."""
    sockets = hub.Hub()
    older, newer = Connection("a"), Connection("a")
    sockets.add(older)
    sockets.add(newer)
    sockets.send_text("x", "a")
    older.put(None)  # a marker: whatever came before it was sent to the older socket
    assert (await older.get_all(), await newer.get_all()) == ([None], ["x"])
    sockets.remove(older)
    assert sockets.listening("a")
    sockets.remove(older, by_client_id=True)
    assert not sockets.listening("a") and not sockets.listening()
