"""The executor: cache keys, instant prompts sending what slow ones send, and a loop that stays responsive."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid

import httpx

from comfy.fake.executor import _signatures
from comfy.fake.server import FakeConfig, running_fake
from tests.fake.test_validation import txt2img
from tests.fake.wire import Frame, open_socket


def test_cache_keys_follow_inputs_and_links() -> None:
    prompt = txt2img()
    keys = _signatures(prompt)
    assert _signatures(copy.deepcopy(prompt)) == keys
    assert len(set(keys.values())) == len(keys)

    seed = txt2img(**{"3__seed": 43})
    changed = {node for node, key in _signatures(seed).items() if key != keys[node]}
    assert changed == {"3", "8", "9"}  # the sampler and everything downstream of it

    as_float = txt2img(**{"5__width": 64.0})
    assert {node for node, key in _signatures(as_float).items() if key != keys[node]} == {"5", "3", "8", "9"}

    listed = txt2img(**{"9__filename_prefix": ["not", "a", "link"]})
    assert _signatures(listed)["9"] != keys["9"]
    assert _signatures(copy.deepcopy(listed)) == _signatures(listed)


def _outline(frames: list[Frame]) -> list[tuple[str, list[str], object]]:
    """Type, data keys and node of each frame: what must not depend on timing."""
    return [(f["type"], sorted(f.get("data") or {}), (f.get("data") or {}).get("node")) for f in frames]


async def test_an_instant_prompt_sends_what_a_timed_one_sends() -> None:
    """Without sleeps between steps the messages must not change (only their timing)."""
    runs: list[list[Frame]] = []
    for step_time in (0.002, 0.0):
        async with running_fake(FakeConfig(step_time=step_time, preview=False)) as comfy:
            client_id = str(uuid.uuid4())
            async with open_socket(comfy.url, client_id) as ws, httpx.AsyncClient(base_url=comfy.url) as http:
                answer = await http.post("/prompt", json={"prompt": txt2img(), "client_id": client_id})
                await ws.wait_done(answer.json()["prompt_id"])
            runs.append(ws.frames)
    timed, instant = runs
    assert _outline(instant) == _outline(timed)
    progress = [f["data"]["value"] for f in instant if f["type"] == "progress"]
    assert progress == [1, 2, 3, 4]


async def test_a_long_instant_prompt_does_not_hold_the_event_loop() -> None:
    """With step_time 0 the sampler still yields the loop at every step."""
    async with running_fake(FakeConfig(step_time=0.0, preview=False)) as comfy:
        status, _ = comfy.fake.submit({"prompt": txt2img(**{"3__steps": 10_000})})
        assert status == 200
        gaps: list[float] = []
        started = time.monotonic()
        while not comfy.fake.queue.history:
            before = time.monotonic()
            await asyncio.sleep(0)
            gaps.append(time.monotonic() - before)
        took = time.monotonic() - started
    assert len(gaps) >= 1000
    assert max(gaps) < took / 4
