"""Failure injection, targeted interrupts, queue handling and the control API."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from comfy.fake.server import FakeConfig, FakeHandle, running_fake
from tests.fake.replay import wait_history
from tests.fake.test_validation import txt2img
from tests.fake.wire import open_socket


async def test_http_500_for_the_next_n_submits(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    comfy.config.submit_http_500 = 2
    for _ in range(2):
        got = await http.post("/prompt", json={"prompt": txt2img()})
        assert (got.status_code, got.headers["content-type"]) == (500, "text/plain; charset=utf-8")
    assert (await http.post("/prompt", json={"prompt": txt2img()})).status_code == 200
    assert comfy.fake.stats.submits == 3


async def test_execution_error_for_a_node_class(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    comfy.config.execution_error_node_class = "VAEDecode"
    client_id = str(uuid.uuid4())
    async with open_socket(comfy.url, client_id) as ws:
        answer = await http.post("/prompt", json={"prompt": txt2img(), "client_id": client_id})
        prompt_id = answer.json()["prompt_id"]
        await ws.wait_done(prompt_id)
    error = next(f["data"] for f in ws.frames if f["type"] == "execution_error")
    assert (error["node_id"], error["node_type"], error["exception_type"]) == ("8", "VAEDecode", "RuntimeError")
    assert error["executed"] == ["4", "10", "6", "7", "5", "3"]
    assert error["current_inputs"]["samples"] == ["<class 'dict'>"]
    entry = await wait_history(http, prompt_id)
    assert entry["status"]["status_str"] == "error"
    kind, data = entry["status"]["messages"][-1]
    assert kind == "execution_error" and data["exception_message"].startswith("Injected")
    assert data == error


async def test_websockets_dropped_mid_run(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    comfy.config.drop_ws_mid_run = 1
    client_id = str(uuid.uuid4())
    async with open_socket(comfy.url, client_id) as ws:
        answer = await http.post("/prompt", json={"prompt": txt2img(), "client_id": client_id})
        await ws.closed.wait()
    assert ws.types().count("progress") == 1
    assert ws.types()[-2:] == ["progress", "binary:1"]  # upstream: a legacy client's preview follows progress
    entry = await wait_history(http, answer.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    assert comfy.config.drop_ws_mid_run == 0


async def test_slow_accept(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    comfy.config.accept_delay_s = 0.3
    started = time.monotonic()
    assert (await http.post("/prompt", json={"prompt": txt2img()})).status_code == 200
    assert time.monotonic() - started >= 0.3
    (event,) = [e for e in comfy.fake.stats.events if e["event"] == "submit"]
    assert event["monotonic"] <= started + 0.1


async def test_interrupt_targets_one_prompt(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    comfy.config.step_time = 0.02
    client_id = str(uuid.uuid4())
    async with open_socket(comfy.url, client_id) as ws:
        first = await http.post("/prompt", json={"prompt": txt2img(**{"3__steps": 30}), "client_id": client_id})
        second = await http.post("/prompt", json={"prompt": txt2img(**{"3__seed": 7}), "client_id": client_id})
        running, pending = first.json()["prompt_id"], second.json()["prompt_id"]
        await ws.wait_type("progress", value=2, prompt_id=running)
        assert (await http.post("/interrupt", json={"prompt_id": pending})).content == b""
        await ws.wait_type("progress", value=4, prompt_id=running)
        assert (await http.post("/interrupt", json={"prompt_id": running})).status_code == 200
        await ws.wait_done(pending)
    assert [f["data"]["prompt_id"] for f in ws.frames if f["type"] == "execution_interrupted"] == [running]
    assert (await wait_history(http, pending))["status"]["status_str"] == "success"
    assert (await wait_history(http, running))["status"]["messages"][-1][0] == "execution_interrupted"
    events = [e for e in comfy.fake.stats.events if e["event"] == "interrupt"]
    assert [e["interrupted"] for e in events] == [False, True]
    assert comfy.fake.stats.interrupts == 2


async def test_same_prompt_id_runs_twice(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    """ComfyUI does not deduplicate prompt ids; neither does the fake."""
    client_id = str(uuid.uuid4())
    async with open_socket(comfy.url, client_id) as ws:
        for _ in range(2):
            got = await http.post("/prompt", json={"prompt": txt2img(), "prompt_id": "same", "client_id": client_id})
            assert got.json()["prompt_id"] == "same"
        await ws.wait_for(lambda f: [g["type"] for g in ws.frames].count("execution_success") == 2)
    assert comfy.fake.stats.executions["same"] == 2


@pytest.mark.parametrize("dialect", ["packaging"])
async def test_queue_array_form(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    """The packaging answers objects; `queue_array_form` makes it answer upstream's arrays."""
    comfy.config.queue_array_form = True
    comfy.config.step_time = 0.05
    client_id = str(uuid.uuid4())
    async with open_socket(comfy.url, client_id) as ws:
        first = await http.post("/prompt", json={"prompt": txt2img(), "client_id": client_id})
        await http.post("/prompt", json={"prompt": txt2img(**{"3__seed": 9}), "client_id": client_id})
        await ws.wait_type("progress", prompt_id=first.json()["prompt_id"])
        queue = (await http.get("/queue")).json()
        await http.post("/queue", json={"clear": True})
        await ws.wait_done(first.json()["prompt_id"])
    (running,) = queue["queue_running"]
    (pending,) = queue["queue_pending"]
    assert running[:2] == [0, first.json()["prompt_id"]]
    assert len(pending) == 5 and pending[4] == ["9"]
    assert pending[3]["client_id"] == client_id


async def test_stamped_progress(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    comfy.config.stamp_messages = True
    client_id = str(uuid.uuid4())
    async with open_socket(comfy.url, client_id) as ws:
        answer = await http.post("/prompt", json={"prompt": txt2img(), "client_id": client_id})
        progress = await ws.wait_type("progress")
        await ws.wait_done(answer.json()["prompt_id"])
    assert abs(progress["data"]["safelight_ts"] - time.time()) < 5


async def test_control_api(http: httpx.AsyncClient) -> None:
    assert (await http.get("/_fake/config")).json()["step_time"] == 0.005
    got = await http.post("/_fake/config", json={"submit_http_500": 1, "preview": False})
    assert got.json()["submit_http_500"] == 1 and got.json()["preview"] is False
    assert (await http.post("/_fake/config", json={"nope": 1})).status_code == 400
    assert (await http.post("/_fake/config", json={"step_time": "fast"})).status_code == 400
    assert (await http.post("/prompt", json={"prompt": txt2img()})).status_code == 500
    answer = await http.post("/prompt", json={"prompt": txt2img()})
    await wait_history(http, answer.json()["prompt_id"])
    await http.post("/queue", json={"delete": ["gone"]})
    stats = (await http.get("/_fake/stats")).json()
    assert (stats["submits"], stats["deletes"], stats["executions"]) == (2, 1, {answer.json()["prompt_id"]: 1})
    assert [e["event"] for e in stats["events"]] == [
        "submit",
        "submit",
        "execution_start",
        "execution_success",
        "delete",
    ]
    assert all({"monotonic", "wall"} <= set(e) for e in stats["events"])
    assert (await http.post("/_fake/reset")).status_code == 200
    assert (await http.get("/_fake/stats")).json()["submits"] == 0
    assert (await http.get("/history")).json() == {}
    assert (await http.get("/_fake/config")).json()["preview"] is True


async def test_instances_are_independent() -> None:
    async with running_fake(FakeConfig(step_time=0.001)) as a, running_fake() as b:
        assert a.url != b.url
        async with httpx.AsyncClient() as client:
            await client.post(f"{a.url}/prompt", json={"prompt": txt2img()})
            assert b.fake.stats.submits == 0 and a.fake.stats.submits == 1


async def test_dialect_changes_while_running(http: httpx.AsyncClient) -> None:
    """`POST /_fake/config {"dialect"}` switches the build the fake speaks; anything else is refused."""
    assert (await http.get("/_fake/config")).json()["dialect"] == "upstream"
    assert "extension" not in (await http.get("/features")).json()
    assert (await http.post("/_fake/config", json={"dialect": "nope"})).status_code == 400
    assert (await http.post("/_fake/config", json={"dialect": "packaging"})).json()["dialect"] == "packaging"
    assert (await http.get("/features")).json()["extension"] == {"manager": {"supports_v4": True}}
    got = await http.post("/prompt", json={"prompt": {"1": {"class_type": "NoSuchNodeXYZ", "inputs": {}}}})
    assert got.json()["error"]["type"] == "missing_node_type"
