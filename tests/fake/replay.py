"""Helpers to drive the fake the way the recorder drove ComfyUI, and to compare what comes back."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx

from tests.fake.recordings import Recording, shape, shapes_by_type
from tests.fake.wire import Frame

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


def assert_shapes_recorded(frames: list[Frame], recorded: list[Frame]) -> None:
    """Every frame of a type the recording has carries one of the key structures recorded for it."""
    expected = shapes_by_type(recorded)
    for frame in frames:
        if frame["type"] in expected:
            assert shape(frame.get("data")) in expected[frame["type"]], frame


def assert_same_messages(got: list[Frame], recorded: list[Frame], *, skip: tuple[str, ...] = ()) -> None:
    """Message by message: the same types in the same order, each with the keys of the recorded one."""
    kept = [frame for frame in got if frame["type"] not in skip]
    wanted = [frame for frame in recorded if frame["type"] not in skip]
    assert [f["type"] for f in kept] == [f["type"] for f in wanted]
    for index, (frame, expected) in enumerate(zip(kept, wanted, strict=True)):
        assert shape(frame.get("data")) == shape(expected.get("data")), (index, frame, expected)


def status_counts(frames: list[Frame]) -> list[int]:
    return [f["data"]["status"]["exec_info"]["queue_remaining"] for f in frames if f["type"] == "status"]
