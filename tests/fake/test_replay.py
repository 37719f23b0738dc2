"""Each recorded scenario replayed against the fake: same message types in the same order, same keys."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import httpx

from comfy.fake.server import FakeHandle
from tests.fake.recordings import load, shape, types
from tests.fake.replay import (
    PROGRESS_TYPES,
    assert_http_like,
    assert_shapes_recorded,
    fast,
    status_counts,
    wait_history,
    warm_cache,
)
from tests.fake.wire import open_socket


async def _submit(http: httpx.AsyncClient, body: Mapping[str, object]) -> str:
    answer = await http.post("/prompt", json=body)
    assert answer.status_code == 200, answer.text
    prompt_id: str = answer.json()["prompt_id"]
    return prompt_id


async def test_02_simple_run(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    rec = load("02")
    client_id = str(uuid.uuid4())
    async with open_socket(comfy.url, client_id) as ws:
        answer = await http.post("/prompt", json={**rec.submissions()[0], "client_id": client_id})
        assert_http_like(answer, rec.http("POST", "/prompt")[0])
        prompt_id = answer.json()["prompt_id"]
        await ws.wait_done(prompt_id)
    assert ws.types() == types(rec.frames("A"))
    assert_shapes_recorded(ws.frames, rec.frames("A"))
    history_entry, view, missing, queue = rec.http("GET")
    got = await http.get(f"/history/{prompt_id}")
    assert_http_like(got, history_entry, keyed_by_id=True)
    entry = got.json()[prompt_id]
    assert entry["status"] == history_entry["json"][next(iter(history_entry["json"]))]["status"]
    image = entry["outputs"]["3"]["images"][0]
    assert image["filename"] == "rec_blur_00001_.png"
    got = await http.get("/view", params={k: image[k] for k in ("filename", "subfolder", "type")})
    assert_http_like(got, view)
    assert got.content[:8].hex() == view["first8_hex"]
    assert_http_like(await http.get("/view?filename=nope.png&subfolder=&type=output"), missing)
    assert (await http.get("/view?filename=nope.png&subfolder=&type=output")).content == b""
    got = await http.get("/queue")
    assert_http_like(got, queue)
    assert got.json() == queue["json"]


async def test_03_previews_with_feature_flags(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    rec = load("03")
    client_id = str(uuid.uuid4())
    submission = rec.submissions()[0]
    async with open_socket(comfy.url, client_id, feature_flags=True) as ws:
        body = {"prompt": fast(submission["prompt"]), "client_id": client_id}
        prompt_id = await _submit(http, body)
        await ws.wait_done(prompt_id)
    assert ws.types() == types(rec.frames("A"))
    assert_shapes_recorded(ws.frames, rec.frames("A"))
    previews = [frame for frame in ws.frames if frame["type"] == "binary:4"]
    assert len(previews) == 4
    assert all(frame["image"][:3] == b"\xff\xd8\xff" for frame in previews)
    assert previews[0]["data"]["prompt_id"] == prompt_id


async def test_04_legacy_client_gets_type_1_previews(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    """This ComfyUI sent no previews to a client without feature flags; upstream (and the fake) sends
    type-1 frames, each just before its `progress`."""
    rec = load("04")
    client_id = str(uuid.uuid4())
    prompt = fast(rec.submissions()[0]["prompt"])
    await warm_cache(http, rec, prompt)
    async with open_socket(comfy.url, client_id) as ws:
        prompt_id = await _submit(http, {"prompt": prompt, "client_id": client_id})
        await ws.wait_done(prompt_id)
    assert types(ws.frames, skip=("binary:1",)) == types(rec.frames("A"))
    assert_shapes_recorded(ws.frames, rec.frames("A"))
    got = ws.types()
    previews = [index for index, kind in enumerate(got) if kind == "binary:1"]
    assert len(previews) == 4
    assert all(got[index + 1] == "progress" for index in previews)
    frames = [frame for frame in ws.frames if frame["type"] == "binary:1"]
    assert all(frame["format"] == 1 and frame["image"][:3] == b"\xff\xd8\xff" for frame in frames)


async def test_05_cached_resubmit(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    rec = load("05")
    client_id = str(uuid.uuid4())
    first, second = rec.submissions()
    await warm_cache(http, rec, fast(first["prompt"]))
    async with open_socket(comfy.url, client_id) as ws:
        for submission in (first, second):
            prompt_id = await _submit(http, {"prompt": fast(submission["prompt"]), "client_id": client_id})
            await ws.wait_done(prompt_id)
    assert ws.types() == types(rec.frames("A"))
    assert_shapes_recorded(ws.frames, rec.frames("A"))
    assert [f["data"]["nodes"] for f in ws.frames if f["type"] == "execution_cached"] == rec.cached_nodes()
    executed = [f["data"]["output"] for f in ws.frames if f["type"] == "executed"]
    assert executed[0] == executed[1]
    entry = await wait_history(http, prompt_id)
    assert entry["outputs"]["4"] == executed[0]


async def test_06_interrupt(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    rec = load("06")
    client_id = str(uuid.uuid4())
    prompt = fast(rec.submissions()[0]["prompt"], delay=0.02)
    await warm_cache(http, rec, prompt)
    interrupt, not_running = rec.http("POST", "/interrupt")
    async with open_socket(comfy.url, client_id) as ws:
        prompt_id = await _submit(http, {"prompt": prompt, "client_id": client_id})
        await ws.wait_type("progress", value=3)
        assert_http_like(await http.post("/interrupt", json=interrupt["request_json"]), interrupt)
        await ws.wait_done(prompt_id)
    assert types(ws.frames, skip=PROGRESS_TYPES) == types(rec.frames("A"), skip=PROGRESS_TYPES)
    assert_shapes_recorded(ws.frames, rec.frames("A"))
    interrupted = next(f["data"] for f in ws.frames if f["type"] == "execution_interrupted")
    assert (interrupted["node_id"], interrupted["node_type"], interrupted["executed"]) == ("2", "SlowProgress", [])
    history = rec.http("GET")[0]
    got = await http.get(f"/history/{prompt_id}")
    assert_http_like(got, history, keyed_by_id=True)
    assert got.json()[prompt_id]["status"] == next(iter(history["json"].values()))["status"]
    assert (await http.get("/queue")).json() == {"queue_running": [], "queue_pending": []}
    assert_http_like(await http.post("/interrupt", json=not_running["request_json"]), not_running)


async def test_07_delete_pending(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    rec = load("07")
    client_id = str(uuid.uuid4())
    first, second = (fast(s["prompt"], delay=0.02) for s in rec.submissions())
    await warm_cache(http, rec, first)
    queue_busy, queue_after, history_gone, queue_empty = rec.http("GET")
    (delete,) = rec.http("POST", "/queue")
    async with open_socket(comfy.url, client_id) as ws:
        running = await _submit(http, {"prompt": first, "client_id": client_id})
        pending = await _submit(http, {"prompt": second, "client_id": client_id})
        await ws.wait_type("executing", node="2")
        got = await http.get("/queue")
        assert_http_like(got, queue_busy)
        assert [item["prompt_id"] for item in got.json()["queue_pending"]] == [pending]
        answer = await http.post("/queue", json={"delete": [pending]})
        assert_http_like(answer, delete)
        got = await http.get("/queue")
        assert_http_like(got, queue_after)
        assert got.json()["queue_pending"] == []
        await ws.wait_done(running)
    assert_http_like(await http.get(f"/history/{pending}"), history_gone)
    assert_http_like(await http.get("/queue"), queue_empty)
    assert pending not in comfy.fake.stats.executions
    assert comfy.fake.stats.executions[running] == 1
    assert types(ws.frames, skip=(*PROGRESS_TYPES, "status")) == types(
        rec.frames("A"), skip=(*PROGRESS_TYPES, "status")
    )
    assert status_counts(ws.frames) == status_counts(rec.frames("A"))
    assert_shapes_recorded(ws.frames, rec.frames("A"))


async def test_08_clear(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    rec = load("08")
    client_id = str(uuid.uuid4())
    prompts = [fast(s["prompt"], delay=0.02) for s in rec.submissions()]
    await warm_cache(http, rec, prompts[0])
    queue_busy, queue_after, queue_empty = rec.http("GET")
    (clear,) = rec.http("POST", "/queue")
    async with open_socket(comfy.url, client_id) as ws:
        running = await _submit(http, {"prompt": prompts[0], "client_id": client_id})
        for prompt in prompts[1:]:
            await _submit(http, {"prompt": prompt, "client_id": client_id})
        await ws.wait_type("executing", node="2")
        got = await http.get("/queue")
        assert_http_like(got, queue_busy)
        assert len(got.json()["queue_pending"]) == 2
        assert_http_like(await http.post("/queue", json={"clear": True}), clear)
        got = await http.get("/queue")
        assert_http_like(got, queue_after)
        assert [item["prompt_id"] for item in got.json()["queue_running"]] == [running]
        await ws.wait_done(running)
    assert_http_like(await http.get("/queue"), queue_empty)
    assert types(ws.frames, skip=(*PROGRESS_TYPES, "status")) == types(
        rec.frames("A"), skip=(*PROGRESS_TYPES, "status")
    )
    assert status_counts(ws.frames) == status_counts(rec.frames("A"))
    assert_shapes_recorded(ws.frames, rec.frames("A"))


async def test_09_connect_mid_execution(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    rec = load("09")
    client_id, other_id = str(uuid.uuid4()), str(uuid.uuid4())
    prompt = fast(rec.submissions()[0]["prompt"], delay=0.04)
    await warm_cache(http, rec, prompt)
    async with open_socket(comfy.url, client_id) as submitter:
        prompt_id = await _submit(http, {"prompt": prompt, "client_id": client_id})
        await submitter.wait_type("progress", value=2)
        async with open_socket(comfy.url, other_id) as other:
            await submitter.wait_type("progress", value=4)
            await submitter.close()
            async with open_socket(comfy.url, client_id) as again:
                await again.wait_done(prompt_id)
            await other.wait_type("status", status={"exec_info": {"queue_remaining": 0}})
    names = rec.socket_names()
    for socket, name in ((submitter, names[0]), (other, names[1]), (again, names[2])):
        recorded = rec.frames(name)
        assert types(socket.frames, skip=PROGRESS_TYPES) == types(recorded, skip=PROGRESS_TYPES), name
        assert_shapes_recorded(socket.frames, recorded)
    assert set(other.types()) == {"status", "progress"}
    assert again.frames[1] == {"type": "executing", "data": {"node": "2"}}
    assert shape(again.frames[0]["data"]) == shape(rec.frames(names[2])[0]["data"])


async def test_10_execution_error(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    rec = load("10")
    client_id = str(uuid.uuid4())
    async with open_socket(comfy.url, client_id) as ws:
        prompt_id = await _submit(http, {**rec.submissions()[0], "client_id": client_id})
        await ws.wait_done(prompt_id)
    assert ws.types() == types(rec.frames("A"))
    assert_shapes_recorded(ws.frames, rec.frames("A"))
    error = next(f["data"] for f in ws.frames if f["type"] == "execution_error")
    recorded = next(f["data"] for f in rec.frames("A") if f["type"] == "execution_error")
    for key in ("node_id", "node_type", "executed", "exception_message", "exception_type", "current_inputs"):
        assert error[key] == recorded[key], key
    assert error["current_outputs"] == recorded["current_outputs"]
    history = rec.http("GET")[0]
    got = await http.get(f"/history/{prompt_id}")
    assert_http_like(got, history, keyed_by_id=True)
    assert got.json()[prompt_id]["status"] == next(iter(history["json"].values()))["status"]


async def test_12_submit_without_client_id(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    rec = load("12")
    async with open_socket(comfy.url, str(uuid.uuid4())) as ws:
        prompt_id = await _submit(http, {"prompt": fast(rec.submissions()[0]["prompt"])})
        entry = await wait_history(http, prompt_id)
        await ws.wait_type("status", status={"exec_info": {"queue_remaining": 0}})
    assert ws.types() == types(rec.frames("A"))
    assert_shapes_recorded(ws.frames, rec.frames("A"))
    recorded = next(iter(rec.http("GET")[0]["json"].values()))
    assert shape(entry) == shape(recorded)
    assert list(entry["prompt"][3]) == ["create_time"]
