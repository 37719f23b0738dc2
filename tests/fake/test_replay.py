"""Each recorded scenario replayed against the fake in the dialect of the build that was recorded
(tests/recordings/upstream and tests/recordings/packaging): every socket the recording had (the submitter,
upstream's `B_observer`, the sockets that connect mid-run) gets the same messages, in the same order, with
the same keys, message by message.

Where timing decides how many `progress` steps a socket sees (an interrupt, a socket that connects mid-run),
those are left out of the comparison and checked on their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from comfy.fake.config import Dialect
from comfy.fake.server import FakeHandle
from tests.fake.recordings import BUILDS, load, types
from tests.fake.replay import (
    OBSERVER,
    PROGRESS_TYPES,
    assert_history_like,
    assert_http_like,
    assert_same_messages,
    fast,
    recorded_sockets,
    status_counts,
    wait_history,
    warm_cache,
)
from tests.fake.wire import open_socket

BUILD = pytest.mark.parametrize("dialect", BUILDS)


async def _submit(http: httpx.AsyncClient, body: Mapping[str, object]) -> str:
    answer = await http.post("/prompt", json=body)
    assert answer.status_code == 200, answer.text
    prompt_id: str = answer.json()["prompt_id"]
    return prompt_id


@BUILD
async def test_02_simple_run(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    rec = load("02", dialect)
    async with recorded_sockets(comfy, rec) as sockets:
        answer = await http.post("/prompt", json={**rec.submissions()[0], "client_id": sockets.client_id})
        assert_http_like(answer, rec.http("POST", "/prompt")[0])
        prompt_id = answer.json()["prompt_id"]
        await sockets.submitter.wait_done(prompt_id)
    assert_same_messages(sockets.submitter.frames, rec.frames("A"))
    sockets.assert_observer_like_recorded()
    history_entry, view, missing, queue = rec.http("GET")
    got = await http.get(f"/history/{prompt_id}")
    assert_http_like(got, history_entry, keyed_by_id=True)
    entry = got.json()[prompt_id]
    assert_history_like(entry, history_entry)
    image = entry["outputs"]["3"]["images"][0]
    assert image["filename"] == "rec_blur_00001_.png"
    assert ("abs_path" in image) is (dialect == "packaging")
    got = await http.get("/view", params={k: image[k] for k in ("filename", "subfolder", "type")})
    assert_http_like(got, view)
    assert got.content[:8].hex() == view["first8_hex"]
    assert_http_like(await http.get("/view?filename=nope.png&subfolder=&type=output"), missing)
    assert (await http.get("/view?filename=nope.png&subfolder=&type=output")).content == b""
    got = await http.get("/queue")
    assert_http_like(got, queue)
    assert got.json() == queue["json"]


@BUILD
async def test_03_previews_with_feature_flags(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    """Both sockets announce the flag (upstream); the submitter gets type-4 frames before each `progress`."""
    rec = load("03", dialect)
    submission = rec.submissions()[0]
    async with recorded_sockets(comfy, rec, feature_flags=True) as sockets:
        prompt_id = await _submit(http, {"prompt": fast(submission["prompt"]), "client_id": sockets.client_id})
        await sockets.submitter.wait_done(prompt_id)
    ws = sockets.submitter
    assert_same_messages(ws.frames, rec.frames("A"))
    sockets.assert_observer_like_recorded()
    assert ws.frames[1]["data"] == rec.frames("A")[1]["data"]  # the feature_flags reply, exactly
    previews = [frame for frame in ws.frames if frame["type"] == "binary:4"]
    assert len(previews) == 4
    assert all(frame["image"][:3] == b"\xff\xd8\xff" for frame in previews)
    assert previews[0]["data"]["prompt_id"] == prompt_id


@BUILD
async def test_04_client_without_feature_flags(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    """Upstream sends type-1 frames (JPEG), each just after its `progress`; the packaging sends none."""
    rec = load("04", dialect)
    prompt = fast(rec.submissions()[0]["prompt"])
    await warm_cache(http, rec, prompt)
    async with recorded_sockets(comfy, rec) as sockets:
        prompt_id = await _submit(http, {"prompt": prompt, "client_id": sockets.client_id})
        await sockets.submitter.wait_done(prompt_id)
    ws = sockets.submitter
    assert_same_messages(ws.frames, rec.frames("A"))
    sockets.assert_observer_like_recorded()
    frames = [frame for frame in ws.frames if frame["type"] == "binary:1"]
    assert len(frames) == (4 if dialect == "upstream" else 0)
    assert all(frame["format"] == 1 and frame["image"][:3] == b"\xff\xd8\xff" for frame in frames)


@BUILD
async def test_05_cached_resubmit(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    rec = load("05", dialect)
    first, second = rec.submissions()
    await warm_cache(http, rec, fast(first["prompt"]))
    async with recorded_sockets(comfy, rec) as sockets:
        for submission in (first, second):
            body = {"prompt": fast(submission["prompt"]), "client_id": sockets.client_id}
            prompt_id = await _submit(http, body)
            await sockets.submitter.wait_done(prompt_id)
    ws = sockets.submitter
    assert_same_messages(ws.frames, rec.frames("A"))
    sockets.assert_observer_like_recorded()
    assert [f["data"]["nodes"] for f in ws.frames if f["type"] == "execution_cached"] == rec.cached_nodes()
    executed = [f["data"]["output"] for f in ws.frames if f["type"] == "executed"]
    assert executed[0] == executed[1]
    entry = await wait_history(http, prompt_id)
    assert entry["outputs"]["4"] == executed[0]


@BUILD
async def test_06_interrupt(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    rec = load("06", dialect)
    prompt = fast(rec.submissions()[0]["prompt"], delay=0.02)
    await warm_cache(http, rec, prompt)
    interrupt, not_running = rec.http("POST", "/interrupt")
    async with recorded_sockets(comfy, rec) as sockets:
        ws = sockets.submitter
        prompt_id = await _submit(http, {"prompt": prompt, "client_id": sockets.client_id})
        await ws.wait_type("progress", value=3)
        assert_http_like(await http.post("/interrupt", json=interrupt["request_json"]), interrupt)
        await ws.wait_done(prompt_id)
    assert_same_messages(ws.frames, rec.frames("A"), skip=PROGRESS_TYPES)
    sockets.assert_observer_like_recorded()
    interrupted = next(f["data"] for f in ws.frames if f["type"] == "execution_interrupted")
    assert (interrupted["node_id"], interrupted["node_type"], interrupted["executed"]) == ("2", "SlowProgress", [])
    history = rec.http("GET")[0]
    got = await http.get(f"/history/{prompt_id}")
    assert_http_like(got, history, keyed_by_id=True)
    assert_history_like(got.json()[prompt_id], history)
    assert (await http.get("/queue")).json() == {"queue_running": [], "queue_pending": []}
    assert_http_like(await http.post("/interrupt", json=not_running["request_json"]), not_running)


@BUILD
async def test_07_delete_pending(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    rec = load("07", dialect)
    first, second = (fast(s["prompt"], delay=0.02) for s in rec.submissions())
    await warm_cache(http, rec, first)
    queue_busy, queue_after, history_gone, queue_empty = rec.http("GET")
    (delete,) = rec.http("POST", "/queue")
    async with recorded_sockets(comfy, rec) as sockets:
        ws = sockets.submitter
        running = await _submit(http, {"prompt": first, "client_id": sockets.client_id})
        pending = await _submit(http, {"prompt": second, "client_id": sockets.client_id})
        await ws.wait_type("executing", node="2")
        got = await http.get("/queue")
        assert_http_like(got, queue_busy)
        assert [_prompt_id(item) for item in got.json()["queue_pending"]] == [pending]
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
    assert_same_messages(ws.frames, rec.frames("A"), skip=(*PROGRESS_TYPES, "status"))
    assert status_counts(ws.frames) == status_counts(rec.frames("A"))
    sockets.assert_observer_like_recorded()


def _prompt_id(item: Any) -> str:
    """A `/queue` entry's prompt id: upstream's array or the packaging's object."""
    prompt_id: str = item[1] if isinstance(item, list) else item["prompt_id"]
    return prompt_id


@BUILD
async def test_08_clear(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    rec = load("08", dialect)
    prompts = [fast(s["prompt"], delay=0.02) for s in rec.submissions()]
    await warm_cache(http, rec, prompts[0])
    queue_busy, queue_after, queue_empty = rec.http("GET")
    (clear,) = rec.http("POST", "/queue")
    async with recorded_sockets(comfy, rec) as sockets:
        ws = sockets.submitter
        running = await _submit(http, {"prompt": prompts[0], "client_id": sockets.client_id})
        for prompt in prompts[1:]:
            await _submit(http, {"prompt": prompt, "client_id": sockets.client_id})
        await ws.wait_type("executing", node="2")
        got = await http.get("/queue")
        assert_http_like(got, queue_busy)
        assert len(got.json()["queue_pending"]) == 2
        assert_http_like(await http.post("/queue", json={"clear": True}), clear)
        got = await http.get("/queue")
        assert_http_like(got, queue_after)
        assert [_prompt_id(item) for item in got.json()["queue_running"]] == [running]
        await ws.wait_done(running)
    assert_http_like(await http.get("/queue"), queue_empty)
    assert_same_messages(ws.frames, rec.frames("A"), skip=(*PROGRESS_TYPES, "status"))
    assert status_counts(ws.frames) == status_counts(rec.frames("A"))
    sockets.assert_observer_like_recorded()


@BUILD
async def test_09_connect_mid_execution(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    """A new client id mid-run gets `status` only upstream (and every `progress` too in the packaging); the
    submitter's client id reconnecting gets `status`, `executing {"node"}` without prompt_id, then the rest."""
    rec = load("09", dialect)
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
            await other.wait_count(2, "status")
    names = rec.socket_names()
    assert names == ["A_submitter", "B_other_client", "A2_same_clientId_reconnect"]
    for socket, name in ((submitter, names[0]), (other, names[1]), (again, names[2])):
        assert_same_messages(socket.frames, rec.frames(name), skip=PROGRESS_TYPES)
    assert set(other.types()) == ({"status"} if dialect == "upstream" else {"status", "progress"})
    assert again.frames[1] == rec.frames(names[2])[1] == {"type": "executing", "data": {"node": "2"}}
    resumed = [f["data"]["value"] for f in again.frames if f["type"] == "progress"]
    assert resumed and resumed == list(range(resumed[0], 13)) and resumed[0] > 4


@BUILD
async def test_10_execution_error(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    rec = load("10", dialect)
    async with recorded_sockets(comfy, rec) as sockets:
        prompt_id = await _submit(http, {**rec.submissions()[0], "client_id": sockets.client_id})
        await sockets.submitter.wait_done(prompt_id)
    ws = sockets.submitter
    assert_same_messages(ws.frames, rec.frames("A"))
    sockets.assert_observer_like_recorded()
    error = next(f["data"] for f in ws.frames if f["type"] == "execution_error")
    recorded = next(f["data"] for f in rec.frames("A") if f["type"] == "execution_error")
    for key in ("node_id", "node_type", "executed", "exception_message", "exception_type"):
        assert error[key] == recorded[key], key
    assert set(error["current_inputs"]) == set(recorded["current_inputs"])
    # The same ComfyUI files as the recorded build's (`  File "/srv/ComfyUI/execution.py"` upstream).
    assert error["traceback"][0].split(",")[0] == recorded["traceback"][0].split(",")[0]
    assert sorted(error["current_outputs"]) == sorted(recorded["current_outputs"])
    history = rec.http("GET")[0]
    got = await http.get(f"/history/{prompt_id}")
    assert_http_like(got, history, keyed_by_id=True)
    assert_history_like(got.json()[prompt_id], history)


@BUILD
async def test_12_submit_without_client_id(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    """No client_id: no execution_*, executing or executed anywhere, no end marker; `progress_state` and
    `progress` to every socket (the observer too, upstream)."""
    rec = load("12", dialect)
    async with recorded_sockets(comfy, rec) as sockets:
        prompt_id = await _submit(http, {"prompt": fast(rec.submissions()[0]["prompt"])})
        entry = await wait_history(http, prompt_id)
        await sockets.submitter.wait_count(len(rec.frames("A")))
    assert_same_messages(sockets.submitter.frames, rec.frames("A"))
    sockets.assert_observer_like_recorded()
    assert_history_like(entry, rec.http("GET")[0])
    assert list(entry["prompt"][3]) == ([] if dialect == "upstream" else ["create_time"])


async def test_13_submitter_reconnects_mid_run(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    """Upstream: the submitter disconnects; a new client id (C) gets only `status`; the submitter's client id
    (A2) gets `status`, `executing {"node": "2"}`, then `progress` from the next step on and the rest of the
    run; the observer only `status`."""
    rec = load("13", "upstream")
    prompt = fast(rec.submissions()[0]["prompt"], delay=0.04)
    await warm_cache(http, rec, prompt)
    client_id = str(uuid.uuid4())
    async with open_socket(comfy.url, str(uuid.uuid4())) as observer:
        async with open_socket(comfy.url, client_id) as submitter:
            prompt_id = await _submit(http, {"prompt": prompt, "client_id": client_id})
            await submitter.wait_type("progress", value=2)
        async with open_socket(comfy.url, str(uuid.uuid4())) as newcomer:
            async with open_socket(comfy.url, client_id) as again:
                await again.wait_done(prompt_id)
            await newcomer.wait_count(2, "status")
        await observer.wait_count(len(rec.frames(OBSERVER)))
    assert_same_messages(submitter.frames, rec.frames("A_submitter"), skip=PROGRESS_TYPES)
    assert_same_messages(newcomer.frames, rec.frames("C_new_client"))
    assert_same_messages(observer.frames, rec.frames(OBSERVER))
    recorded = rec.frames("A2_same_clientId_reconnect")
    assert_same_messages(again.frames, recorded, skip=PROGRESS_TYPES)
    assert again.frames[0]["type"] == "status"
    assert again.frames[1] == recorded[1] == {"type": "executing", "data": {"node": "2"}}
    # Each step after the re-announcement is `progress_state` then `progress`, as recorded.
    for index, frame in enumerate(again.frames):
        if frame["type"] == "progress":
            assert again.frames[index - 1]["type"] == "progress_state", index
    resumed = [f["data"]["value"] for f in again.frames if f["type"] == "progress"]
    assert resumed == list(range(resumed[0], 15)) and resumed[0] > 2


async def test_18_legacy_preview_order(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    """Upstream, no feature flags: each step is `progress_state`, `progress`, then a type-1 frame; the
    observer gets no previews."""
    rec = load("18", "upstream")
    prompt = fast(rec.submissions()[0]["prompt"])
    await warm_cache(http, rec, prompt)
    async with recorded_sockets(comfy, rec) as sockets:
        prompt_id = await _submit(http, {"prompt": prompt, "client_id": sockets.client_id})
        await sockets.submitter.wait_done(prompt_id)
    assert_same_messages(sockets.submitter.frames, rec.frames("A"))
    sockets.assert_observer_like_recorded()
    steps = [f["type"] for f in sockets.submitter.frames if f["type"] in ("progress", "binary:1")]
    assert steps == ["progress", "binary:1"] * 5


def test_every_recorded_socket_is_replayed() -> None:
    """The sockets these tests open are the ones each recording had."""
    assert load("09", "upstream").socket_names() == load("09", "packaging").socket_names()
    assert load("13", "upstream").socket_names() == [
        "A_submitter",
        OBSERVER,
        "C_new_client",
        "A2_same_clientId_reconnect",
    ]
    for stem in ("02", "03", "04", "05", "06", "07", "08", "10", "12", "18"):
        assert load(stem, "upstream").socket_names() == ["A", OBSERVER], stem
    assert types(load("12", "upstream").frames(OBSERVER)).count("progress") == 3
