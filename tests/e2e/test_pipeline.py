"""End to end over real sockets: uvicorn API, arq worker, Redis, PostgreSQL, the fake ComfyUI."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from comfy.fake.server import FakeHandle
from tests.stack import CREATE, GENERATION_EVENTS, LEGACY_WS, TRANSPORT_WS, GraphQLClient

pytestmark = pytest.mark.usefixtures("worker")

MakeClient = Callable[..., Awaitable[GraphQLClient]]
SMALL = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 6, "batchSize": 2}


async def create(client: GraphQLClient, **overrides: Any) -> dict[str, Any]:
    data = await client.query(CREATE, {"input": {**SMALL, **overrides}})
    result = data["createGeneration"]
    assert result["__typename"] == "GenerationPayload", result
    generation: dict[str, Any] = result["generation"]
    return generation


def _check_run(events: list[dict[str, Any]]) -> None:
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "SNAPSHOT"
    assert kinds[-1] == "STATUS"
    assert events[-1]["status"] == "SUCCEEDED"
    assert events[-1]["terminal"] is True
    percents = [e["progress"]["percent"] for e in events if e["kind"] == "PROGRESS"]
    assert len(percents) >= 6  # one per sampler step at least
    assert percents == sorted(percents), "progress must never go backwards"
    assert percents[-1] > percents[0]
    durable = [e["seq"] for e in events if e["kind"] in ("STATUS", "IMAGE")]
    assert durable == sorted(set(durable)), "durable events arrive once, in order"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_create_subscribe_and_receive_everything(
    make_client: MakeClient, fake: FakeHandle, protocol: str
) -> None:
    fake.config.step_time = 0.03
    client = await make_client()
    generation = await create(client)
    async with client.subscription(GENERATION_EVENTS, {"id": generation["id"]}, protocol=protocol) as sub:
        events = [e["generationEvents"] for e in await sub.collect()]
        assert sub.completed
    _check_run(events)
    images = [e["image"] for e in events if e["kind"] == "IMAGE"]
    assert [i["index"] for i in images] == [0, 1]
    async with httpx.AsyncClient() as http:
        for image in images:
            assert image["url"].startswith("http://127.0.0.1:")
            response = await http.get(image["url"])
            assert response.status_code == 200
            assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
            assert "immutable" in response.headers["cache-control"]
            assert (image["width"], image["height"]) == (64, 64)
            thumb = await http.get(image["thumbnailUrl"])
            assert thumb.status_code == 200


async def test_late_subscriber_gets_the_terminal_snapshot(make_client: MakeClient) -> None:
    client = await make_client()
    generation = await create(client)
    async with client.subscription(GENERATION_EVENTS, {"id": generation["id"]}) as sub:
        await sub.collect()
    async with client.subscription(GENERATION_EVENTS, {"id": generation["id"]}) as late:
        events = [e["generationEvents"] for e in await late.collect()]
    assert len(events) == 1
    snapshot = events[0]
    assert snapshot["kind"] == "SNAPSHOT"
    assert snapshot["terminal"] is True
    assert snapshot["status"] == "SUCCEEDED"
    assert snapshot["generation"]["progress"]["percent"] == 100.0
    assert len(snapshot["generation"]["images"]) == 2


async def test_reconnect_with_after_replays_exactly_the_missed_events(make_client: MakeClient) -> None:
    client = await make_client()
    generation = await create(client)
    async with client.subscription(GENERATION_EVENTS, {"id": generation["id"]}) as sub:
        full = [e["generationEvents"] for e in await sub.collect()]
    durable = [e for e in full if e["kind"] in ("STATUS", "IMAGE")]
    snapshot_seq = full[0]["seq"]
    all_durable_seqs = list(range(1, durable[-1]["seq"] + 1))
    for after in (0, 1, snapshot_seq, durable[-1]["seq"] - 1):
        async with client.subscription(GENERATION_EVENTS, {"id": generation["id"], "after": after}) as again:
            replay = [e["generationEvents"] for e in await again.collect()]
        assert [e["seq"] for e in replay] == [s for s in all_durable_seqs if s > after]
        assert replay[-1]["status"] == "SUCCEEDED"
    kinds = {e["seq"]: e["kind"] for e in replay}
    assert kinds[durable[-1]["seq"]] == "STATUS"


async def test_snapshot_handoff_while_the_job_moves(make_client: MakeClient, fake: FakeHandle) -> None:
    """Subscribers joining at every moment of a run each see one coherent, gap-free story."""
    fake.config.step_time = 0.02
    client = await make_client()
    generation = await create(client, steps=20)

    async def watch(delay: float) -> list[dict[str, Any]]:
        await asyncio.sleep(delay)
        async with client.subscription(GENERATION_EVENTS, {"id": generation["id"]}) as sub:
            return [e["generationEvents"] for e in await sub.collect()]

    stories = await asyncio.gather(*(watch(i * 0.04) for i in range(15)))
    for events in stories:
        assert events[0]["kind"] == "SNAPSHOT"
        seqs = [events[0]["seq"]] + [e["seq"] for e in events[1:] if e["kind"] in ("STATUS", "IMAGE")]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"gap or duplicate in {seqs}"
        assert events[-1]["terminal"]
        assert events[-1]["status"] == "SUCCEEDED"
        progress = [e["progress"]["percent"] for e in events if e["kind"] == "PROGRESS"]
        assert progress == sorted(progress)
    assert any(s[0]["status"] == "RUNNING" for s in stories), "some subscriber should join mid-run"
