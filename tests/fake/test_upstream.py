"""What only upstream ComfyUI's recordings show (tests/recordings/upstream 15-17), and upstream's one socket
per client id (its server.py), against the fake's default, upstream dialect."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from comfy.fake.config import Dialect
from comfy.fake.server import FakeHandle
from tests.fake.recordings import BUILDS, load, types
from tests.fake.replay import (
    PROGRESS_TYPES,
    assert_history_like,
    assert_http_like,
    assert_same_messages,
    fast,
    recorded_sockets,
    wait_history,
    warm_cache,
)
from tests.fake.test_validation import txt2img
from tests.fake.wire import open_socket


async def _submit(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    answer = await http.post("/prompt", json=body)
    assert answer.status_code == 200, answer.text
    prompt_id: str = answer.json()["prompt_id"]
    return prompt_id


async def test_15_queue_entries_are_arrays(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    """`[number, prompt_id, prompt, extra_data, outputs_to_execute]`, extra_data being the request's plus
    client_id (no create_time); a supplied prompt_id is used as given."""
    rec = load("15", "upstream")
    submissions = rec.submissions()
    (queue_busy, queue_empty) = rec.http("GET", "/queue")
    async with recorded_sockets(comfy, rec) as sockets:
        ids = []
        for index, submission in enumerate(submissions):
            body = {**submission, "client_id": sockets.client_id}
            if index == 0:
                body["prompt"] = fast(submission["prompt"], delay=0.05)  # long enough to stay running
            ids.append(await _submit(http, body))
        await sockets.submitter.wait_type("executing", node="2", prompt_id=ids[0])
        got = await http.get("/queue")
        assert_http_like(got, queue_busy)
        assert (await http.post("/queue", json={"clear": True})).status_code == 200
        assert (await http.post("/interrupt", json={})).status_code == 200
        await sockets.submitter.wait_done(ids[0])
    assert ids[2] == submissions[2]["prompt_id"] == "rec15-supplied-prompt-id"
    queue, want = got.json(), queue_busy["json"]
    entries = queue["queue_running"] + queue["queue_pending"]
    recorded = want["queue_running"] + want["queue_pending"]
    assert [len(entry) for entry in entries] == [len(entry) for entry in recorded] == [5, 5, 5]
    assert [entry[1] for entry in entries] == ids
    numbers = [entry[0] for entry in entries]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    for entry, expected in zip(entries, recorded, strict=True):
        assert entry[2] == expected[2] or entry is entries[0]  # the first ran with a shorter delay
        assert entry[4] == expected[4] == ["4"]
        assert entry[3] == {**expected[3], "client_id": sockets.client_id}
    assert list(entries[2][3]) == ["note", "client_id"]
    assert_http_like(await http.get("/queue"), queue_empty)
    assert (await http.get("/queue")).json() == queue_empty["json"]


async def test_16_history_forms(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    """Success, error and interrupt: `status.messages` as `[event, data]` with the whole message, and
    `/history?max_items=2` the last two, oldest first."""
    rec = load("16", "upstream")
    succeeded, failed, interrupted = (fast(s["prompt"], delay=0.02) for s in rec.submissions())
    recorded = rec.http("GET")
    await warm_cache(http, rec, succeeded)
    async with recorded_sockets(comfy, rec) as sockets:
        ws = sockets.submitter
        ids = [await _submit(http, {"prompt": p, "client_id": sockets.client_id}) for p in (succeeded, failed)]
        ids.append(await _submit(http, {"prompt": interrupted, "client_id": sockets.client_id}))
        await ws.wait_type("progress", prompt_id=ids[2], value=2)
        assert (await http.post("/interrupt", json={})).status_code == 200
        await ws.wait_done(ids[2])
    # When a `status` comes depends on when each prompt was submitted; how many do does not.
    assert_same_messages(ws.frames, rec.frames("A"), skip=(*PROGRESS_TYPES, "status"))
    assert ws.types().count("status") == types(rec.frames("A")).count("status")
    sockets.assert_observer_like_recorded()
    for prompt_id, answer in zip(ids, recorded[:3], strict=True):
        got = await http.get(f"/history/{prompt_id}")
        assert_http_like(got, answer, keyed_by_id=True)
        assert_history_like(got.json()[prompt_id], answer)
    entries = [(await wait_history(http, prompt_id)) for prompt_id in ids]
    error = entries[1]["status"]["messages"][-1]
    sent = next(f["data"] for f in ws.frames if f["type"] == "execution_error")
    assert error == ["execution_error", sent]
    assert error[1]["traceback"] and error[1]["exception_message"] == "boom for history\n"
    stopped = entries[2]["status"]["messages"][-1]
    assert stopped[0] == "execution_interrupted"
    assert (stopped[1]["node_id"], stopped[1]["node_type"], stopped[1]["executed"]) == ("2", "SlowProgress", ["1"])
    last_two = await http.get("/history?max_items=2")
    assert_http_like(last_two, recorded[3], keyed_by_id=True)
    assert list(last_two.json()) == ids[1:]


async def test_17_interrupt_names_a_prompt(comfy: FakeHandle, http: httpx.AsyncClient) -> None:
    """`POST /interrupt {"prompt_id"}`: a pending or unknown id answers 200 and changes nothing; the running
    one's id interrupts it, and the pending prompt then runs."""
    rec = load("17", "upstream")
    long_run, short_run = (fast(s["prompt"], delay=0.02) for s in rec.submissions())
    pending_answer, unknown_answer, running_answer = rec.http("POST", "/interrupt")
    await warm_cache(http, rec, long_run)
    async with recorded_sockets(comfy, rec) as sockets:
        ws = sockets.submitter
        running = await _submit(http, {"prompt": long_run, "client_id": sockets.client_id})
        pending = await _submit(http, {"prompt": short_run, "client_id": sockets.client_id})
        await ws.wait_type("progress", prompt_id=running, value=2)
        answer = await http.post("/interrupt", json={"prompt_id": pending})
        assert_http_like(answer, pending_answer)
        await ws.wait_type("progress", prompt_id=running, value=5)
        answer = await http.post("/interrupt", json={"prompt_id": unknown_answer["request_json"]["prompt_id"]})
        assert_http_like(answer, unknown_answer)
        await ws.wait_type("progress", prompt_id=running, value=8)
        assert [entry[1] for entry in (await http.get("/queue")).json()["queue_pending"]] == [pending]
        assert_http_like(await http.post("/interrupt", json={"prompt_id": running}), running_answer)
        await ws.wait_done(pending)
    # When a `status` comes depends on when each prompt was submitted; how many do does not.
    assert_same_messages(ws.frames, rec.frames("A"), skip=(*PROGRESS_TYPES, "status"))
    assert ws.types().count("status") == types(rec.frames("A")).count("status")
    sockets.assert_observer_like_recorded()
    assert [f["data"]["prompt_id"] for f in ws.frames if f["type"] == "execution_interrupted"] == [running]
    _, history_running, history_pending, queue_empty = rec.http("GET")
    for prompt_id, recorded in ((running, history_running), (pending, history_pending)):
        got = await http.get(f"/history/{prompt_id}")
        assert_http_like(got, recorded, keyed_by_id=True)
        assert_history_like(got.json()[prompt_id], recorded)
    assert (await http.get("/queue")).json() == queue_empty["json"]
    assert [e["interrupted"] for e in comfy.fake.stats.events if e["event"] == "interrupt"] == [False, False, True]


@pytest.mark.parametrize("dialect", BUILDS)
async def test_one_socket_per_client_id(comfy: FakeHandle, http: httpx.AsyncClient, dialect: Dialect) -> None:
    """A second socket with a client id replaces the first, which gets nothing more. Upstream forgets the
    client id when either closes (server.py's `sockets.pop(sid)`), so the older one closing cuts the newer
    one off; the packaging keeps the newer one."""
    client_id = str(uuid.uuid4())
    async with open_socket(comfy.url, str(uuid.uuid4())) as witness:
        async with open_socket(comfy.url, client_id) as older, open_socket(comfy.url, client_id) as newer:
            prompt_id = await _submit(http, {"prompt": txt2img(), "client_id": client_id})
            await newer.wait_done(prompt_id)
            assert older.types() == ["status"]
            await older.close()
            await witness.wait_count(4, "status")  # on connect, queued, running, done
            again = await _submit(http, {"prompt": txt2img(**{"3__seed": 1}), "client_id": client_id})
            await wait_history(http, again)
            await witness.wait_count(7, "status")
            if dialect == "packaging":
                await newer.wait_done(again)
        assert older.types() == ["status"]
        seen = [f["data"].get("prompt_id") for f in newer.frames if f["type"] == "execution_start"]
        assert seen == ([prompt_id] if dialect == "upstream" else [prompt_id, again])
        if dialect == "upstream":
            # Forgotten: not even the broadcasts after the older socket closed reach the newer one.
            assert newer.frames[-1] == {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}}
