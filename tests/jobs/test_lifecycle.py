"""The job lifecycle through the API with a real worker: cancel at every stage, retries, failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import websockets
from arq.jobs import Job, JobStatus

from comfy.fake.catalog import CHECKPOINTS
from comfy.fake.server import FakeHandle
from comfy.templates import validate_params
from db.engine import single_statement
from db.transitions import create_generation
from db.users import user_by_token
from jobs.enqueue import job_id_for
from jobs.worker.arq_worker import SafelightWorker
from jobs.worker.run import run_generation
from jobs.worker.runtime import Runtime
from jobs.worker.submit import prompt_id_for
from tests.sql import recorded_statements
from tests.stack import CREATE, GENERATION_EVENTS, GraphQLClient, Subscription

MakeClient = Callable[..., Awaitable[GraphQLClient]]
SMALL = {"prompt": "a red fox", "width": 64, "height": 64, "steps": 4}

GENERATION = """
query($id: ID!) { generation(id: $id) {
  id status attempt promptId seedUsed lastSeq
  progress { phase percent queuePosition }
  error { code message retryable node }
  images { url contentHash }
} }
"""
CANCEL = """
mutation($id: ID!) { cancelGeneration(id: $id) {
  __typename
  ... on GenerationPayload { generation { status } }
  ... on InvalidStateError { message status }
  ... on NotFoundError { message }
} }
"""
MY_EVENTS = "subscription { myGenerationEvents { generationId kind terminal status progress { phase } } }"
RETRY = """
mutation($id: ID!) { retryGeneration(id: $id) {
  __typename ... on GenerationPayload { generation { status attempt } } ... on InvalidStateError { status }
} }
"""


async def create(client: GraphQLClient, **overrides: Any) -> str:
    data = await client.query(CREATE, {"input": {**SMALL, **overrides}})
    result = data["createGeneration"]
    assert result["__typename"] == "GenerationPayload", result
    return str(result["generation"]["id"])


async def get(client: GraphQLClient, gid: str) -> dict[str, Any]:
    data = await client.query(GENERATION, {"id": gid})
    generation: dict[str, Any] = data["generation"]
    return generation


async def wait_for(
    client: GraphQLClient, gid: str, predicate: Callable[[dict[str, Any]], bool], *, within: float = 20.0
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            generation = await get(client, gid)
            if predicate(generation):
                return generation
            await asyncio.sleep(0.02)


async def _snapshot(sub: Subscription) -> None:
    """The subscription is live once its SNAPSHOT arrives: a change made after it is seen as an event."""
    first = await sub.next()
    assert first is not None and first["generationEvents"]["kind"] == "SNAPSHOT", first


async def finished(client: GraphQLClient, gid: str) -> dict[str, Any]:
    return await wait_for(client, gid, lambda g: g["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"))


@pytest.mark.usefixtures("worker")
async def test_cancel_before_pickup_never_reaches_comfyui(
    make_client: MakeClient, fake: FakeHandle, worker: SafelightWorker
) -> None:
    client = await make_client()
    worker.hold()
    try:
        gid = await create(client)
        behind = await create(client)
        first, second = await get(client, gid), await get(client, behind)
        assert first["progress"]["phase"] == "WAITING"
        assert first["progress"]["queuePosition"] >= 1
        assert second["progress"]["queuePosition"] == first["progress"]["queuePosition"] + 1
        result = (await client.query(CANCEL, {"id": gid}))["cancelGeneration"]
        assert (await get(client, behind))["progress"]["queuePosition"] == first["progress"]["queuePosition"]
        assert result == {"__typename": "GenerationPayload", "generation": {"status": "CANCELLED"}}
    finally:
        worker.release()
    # The worker takes the cancelled job (it must leave it alone) and then the one behind it.
    runtime: Runtime = worker.ctx["runtime"]
    job = Job(job_id_for(uuid.UUID(gid), 1), runtime.redis, _queue_name=runtime.keys.queue)
    await wait_for(client, behind, lambda g: g["status"] == "SUCCEEDED")
    for _ in range(500):
        if await job.status() == JobStatus.not_found:
            break
        await asyncio.sleep(0.01)
    assert await job.status() == JobStatus.not_found
    generation = await get(client, gid)
    assert generation["status"] == "CANCELLED"
    assert generation["promptId"] is None
    assert fake.fake.stats.executions[prompt_id_for(uuid.UUID(gid), 1)] == 0
    assert not any(e.get("prompt_id") == prompt_id_for(uuid.UUID(gid), 1) for e in fake.fake.stats.events)


async def test_cancel_waiting_in_comfy_queue_and_while_running(
    make_client: MakeClient, fake: FakeHandle, worker: SafelightWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.config.step_time = 0.05
    client = await make_client()
    running = await create(client, steps=60)
    await wait_for(client, running, lambda g: g["progress"]["phase"] == "EXECUTING")
    waiting = await create(client)
    await wait_for(client, waiting, lambda g: g["progress"]["phase"] == "BACKEND_QUEUE")
    deletes, interrupts = fake.fake.stats.deletes, fake.fake.stats.interrupts

    async with client.subscription(GENERATION_EVENTS, {"id": waiting}) as sub:
        await _snapshot(sub)
        assert (await client.query(CANCEL, {"id": waiting}))["cancelGeneration"]["__typename"] == "GenerationPayload"
        events = [e["generationEvents"] for e in await sub.collect()]
    assert events[-1]["status"] == "CANCELLED"
    assert fake.fake.stats.deletes == deletes + 1
    assert fake.fake.stats.executions[prompt_id_for(uuid.UUID(waiting), 1)] == 0

    backend = worker.ctx["runtime"].backends.get(fake.url)
    reads: list[str] = []

    async def queue() -> Any:
        reads.append("queue")
        return await type(backend.client).queue(backend.client)

    monkeypatch.setattr(backend.client, "queue", queue)
    async with client.subscription(GENERATION_EVENTS, {"id": running}) as sub:
        await _snapshot(sub)
        assert (await client.query(CANCEL, {"id": running}))["cancelGeneration"]["__typename"] == "GenerationPayload"
        events = [e["generationEvents"] for e in await sub.collect()]
    statuses = [e["status"] for e in events if e["kind"] == "STATUS"]
    assert statuses[-2:] == ["CANCELLING", "CANCELLED"]
    assert fake.fake.stats.interrupts == interrupts + 1
    assert reads == [], "a prompt known to run is interrupted without asking the queue first"
    assert fake.fake.stats.deletes == deletes + 1  # a prompt known to run is interrupted, not deleted
    generation = await get(client, running)
    assert generation["images"] == []
    assert generation["progress"]["percent"] < 100

    again = (await client.query(CANCEL, {"id": running}))["cancelGeneration"]
    assert again == {
        "__typename": "InvalidStateError",
        "message": "generation is already CANCELLED",
        "status": "CANCELLED",
    }


@pytest.mark.usefixtures("worker")
async def test_cancelling_a_finished_generation_is_an_invalid_state(make_client: MakeClient) -> None:
    client = await make_client()
    gid = await create(client)
    assert (await finished(client, gid))["status"] == "SUCCEEDED"
    result = (await client.query(CANCEL, {"id": gid}))["cancelGeneration"]
    assert result["__typename"] == "InvalidStateError"
    assert result["status"] == "SUCCEEDED"


@pytest.mark.usefixtures("worker")
async def test_running_goes_out_before_the_progress_that_follows_it(make_client: MakeClient) -> None:
    """The claim's RUNNING event waits for the run's first flush, and leaves ahead of what follows it."""
    client = await make_client()
    async with client.subscription(MY_EVENTS) as sub:
        probe = await create(client)
        while (await _mine(sub))["generationId"] != probe:  # the first event of the probe: we are live
            pass
        gid = await create(client)
        seen: list[tuple[str, str]] = []
        while True:
            event = await _mine(sub)
            if event["generationId"] != gid:
                continue
            detail = {"STATUS": event["status"], "PROGRESS": (event["progress"] or {}).get("phase")}
            seen.append((event["kind"], detail.get(event["kind"], "")))
            if event["terminal"]:
                break
    assert seen[:3] == [("STATUS", "QUEUED"), ("STATUS", "RUNNING"), ("PROGRESS", "BACKEND_QUEUE")], seen
    assert seen[-1] == ("STATUS", "SUCCEEDED")
    await finished(client, probe)


async def _mine(sub: Subscription) -> dict[str, Any]:
    data = await sub.next()
    assert data is not None
    event: dict[str, Any] = data["myGenerationEvents"]
    return event


@pytest.mark.parametrize(("attempt", "writes"), [(1, 1), (None, 2)])
async def test_the_claim_records_the_backend_or_a_write_of_its_own_does(
    make_client: MakeClient,
    fake: FakeHandle,
    worker: SafelightWorker,
    monkeypatch: pytest.MonkeyPatch,
    attempt: int | None,
    writes: int,
) -> None:
    """With its job's attempt, the claim alone records backend and prompt id: one statement before the
    prompt is submitted. Without it (no placement), the backend is recorded by a write of its own first."""
    runtime: Runtime = worker.ctx["runtime"]
    client = await make_client()
    async with single_statement(runtime.sessions) as session:
        owner = await user_by_token(session, token=client.token or "")
        assert owner is not None
        txt2img = await runtime.templates.get("txt2img")
        assert txt2img is not None
        params = validate_params(txt2img.template, {**SMALL, "seed": 3, "checkpoint": CHECKPOINTS[0]})
        change, _ = await create_generation(
            session, owner_id=owner.id, template="txt2img", params=dict(params.values), prompt="p", seed=3
        )
    gid = change.generation.id
    before_submit: list[int] = []
    backend = runtime.backends.get(fake.url)
    assert backend is not None
    submit = backend.client.submit

    async def counted_submit(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)  # the driver's query log reports on the next turn of the loop
        # Not the heartbeat's recovery SELECT, should it run meanwhile.
        before_submit.append(sum("UPDATE generations" in statement for statement in statements))
        return await submit(*args, **kwargs)

    monkeypatch.setattr(backend.client, "submit", counted_submit)
    with recorded_statements(worker.ctx["engine"]) as statements:
        await run_generation(runtime, gid, attempt)  # not enqueued: nothing runs it but this call
    assert before_submit == [writes], statements[: before_submit[0] if before_submit else None]
    generation = await get(client, str(gid))
    assert generation["status"] == "SUCCEEDED"
    assert generation["promptId"] == prompt_id_for(gid, 1)
    assert fake.fake.stats.executions[prompt_id_for(gid, 1)] == 1


@pytest.mark.usefixtures("worker")
async def test_transient_failure_is_retried_with_a_new_attempt(make_client: MakeClient, fake: FakeHandle) -> None:
    fake.config.submit_http_500 = 1
    client = await make_client()
    gid = await create(client)
    async with client.subscription(GENERATION_EVENTS, {"id": gid, "after": 0}) as sub:
        events = [e["generationEvents"] for e in await sub.collect()]
    statuses = [(e["status"], e["attempt"]) for e in events if e["kind"] == "STATUS"]
    assert statuses == [("QUEUED", 1), ("RUNNING", 1), ("QUEUED", 2), ("RUNNING", 2), ("SUCCEEDED", 2)]
    retry_event = events[[e["kind"] for e in events].index("STATUS", 2)]
    assert retry_event["error"]["retryable"] is True
    assert events[-1]["error"] is None, "an attempt's error belongs to that attempt, not to the success"
    generation = await get(client, gid)
    assert generation["attempt"] == 2
    assert generation["promptId"] == prompt_id_for(uuid.UUID(gid), 2)
    assert generation["error"] is None
    assert len(generation["images"]) == 1


@pytest.mark.usefixtures("worker")
async def test_execution_error_fails_permanently_and_retry_runs_again(
    make_client: MakeClient, fake: FakeHandle
) -> None:
    fake.config.execution_error_node_class = "VAEDecode"
    client = await make_client()
    gid = await create(client)
    generation = await finished(client, gid)
    assert generation["status"] == "FAILED"
    assert generation["attempt"] == 1
    error = generation["error"]
    assert error["code"] == "EXECUTION_ERROR"
    assert error["retryable"] is False
    assert "VAEDecode" in error["node"]
    fake.config.execution_error_node_class = None
    retried = (await client.query(RETRY, {"id": gid}))["retryGeneration"]
    assert retried == {"__typename": "GenerationPayload", "generation": {"status": "QUEUED", "attempt": 2}}
    generation = await finished(client, gid)
    assert generation["status"] == "SUCCEEDED"
    assert generation["error"] is None
    assert (await client.query(RETRY, {"id": gid}))["retryGeneration"]["__typename"] == "InvalidStateError"


@pytest.mark.usefixtures("worker")
async def test_websocket_drop_mid_run_is_reconciled_from_history(make_client: MakeClient, fake: FakeHandle) -> None:
    """The socket drops after the first step and reconnects with the same client id: the job asks /queue and
    /history at the close and again at the reconnect, and relays every later step live."""
    fake.config.drop_ws_mid_run = 1
    fake.config.step_time = 0.05
    client = await make_client()
    gid = await create(client, steps=30, batchSize=2)
    async with client.subscription(GENERATION_EVENTS, {"id": gid, "after": 0}) as sub:
        events = [e["generationEvents"] for e in await sub.collect()]
    progress = [e["progress"] for e in events if e["kind"] == "PROGRESS"]
    steps = [p["step"] for p in progress if p["phase"] == "EXECUTING" and p["step"]]
    assert steps[-1] == 30, "live again after the reconnect, to the last step"
    assert "BACKEND_QUEUE" not in [p["phase"] for p in progress[[p["step"] for p in progress].index(1) :]]
    generation = await finished(client, gid)
    assert generation["status"] == "SUCCEEDED"
    assert generation["attempt"] == 1
    assert len(generation["images"]) == 2
    assert fake.fake.stats.executions[prompt_id_for(uuid.UUID(gid), 1)] == 1


async def test_a_closed_socket_is_noticed_at_once_not_by_the_watchdog(
    make_client: MakeClient, fake: FakeHandle, worker: SafelightWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The websocket closes mid-run and cannot reconnect; the silence watchdog is an hour. The close itself
    makes the job ask /queue (UNTRACKED: running, no live progress), and /history concludes it."""
    runtime: Runtime = worker.ctx["runtime"]
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"comfy_watchdog_s": 3600.0}))
    backend = runtime.backends.get(fake.url)
    assert backend is not None
    connections = backend.socket.connections
    real_url = backend.socket.url
    fake.config.step_time = 0.03
    fake.config.drop_ws_mid_run = 1
    monkeypatch.setattr(backend.socket, "url", "ws://127.0.0.1:9/ws")  # reconnects go nowhere
    client = await make_client()
    try:
        gid = await create(client, steps=20)
        async with client.subscription(GENERATION_EVENTS, {"id": gid, "after": 0}) as sub:
            events = [e["generationEvents"] for e in await sub.collect()]
        reconnected = backend.socket.connections
    finally:
        monkeypatch.setattr(backend.socket, "url", real_url)
        await backend.socket.wait_connected(30)  # the next test finds it as it was
    phases = [e["progress"]["phase"] for e in events if e["kind"] == "PROGRESS"]
    assert events[-1]["status"] == "SUCCEEDED", events[-1]
    assert reconnected == connections, "the socket never came back during the run"
    assert "UNTRACKED" in phases, phases
    after = phases[phases.index("UNTRACKED") :]
    assert "BACKEND_QUEUE" not in after and "EXECUTING" not in after, "no live phase is claimed without events"
    assert fake.fake.stats.executions[prompt_id_for(uuid.UUID(gid), 1)] == 1


async def test_a_socket_comfyui_forgot_is_registered_again(
    make_client: MakeClient, fake: FakeHandle, worker: SafelightWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upstream forgets a client id's socket when any other socket of that id closes (a half-open one left by
    a network blip, say): the worker's socket stays open and hears nothing. Silent while its prompt runs,
    the job connects again, and every later step is live."""
    runtime: Runtime = worker.ctx["runtime"]
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"comfy_watchdog_s": 0.5}))
    backend = runtime.backends.get(fake.url)
    assert backend is not None
    fake.config.step_time = 0.05
    client = await make_client()
    gid = await create(client, steps=60)
    async with client.subscription(GENERATION_EVENTS, {"id": gid, "after": 0}) as sub:
        while True:
            data = await sub.next()
            assert data is not None
            event = data["generationEvents"]
            if event["kind"] == "PROGRESS" and (event["progress"]["step"] or 0) >= 3:
                break
        url = f"{fake.ws_url}?clientId={backend.socket.client_id}"
        async with websockets.connect(url):  # takes the client id over; its close makes ComfyUI forget it
            pass
        events = [e["generationEvents"] for e in await sub.collect()]
    steps = [e["progress"]["step"] for e in events if e["kind"] == "PROGRESS" and e["progress"]["step"]]
    assert events[-1]["status"] == "SUCCEEDED"
    assert steps[-1] == 60, "live again to the last step"
    assert fake.fake.stats.executions[prompt_id_for(uuid.UUID(gid), 1)] == 1


@pytest.mark.usefixtures("worker")
async def test_idempotency_key_returns_the_same_generation(make_client: MakeClient) -> None:
    client = await make_client()
    variables = {"input": SMALL, "key": "click-once-42"}
    first = (await client.query(CREATE, variables))["createGeneration"]
    second = (await client.query(CREATE, variables))["createGeneration"]
    assert first["created"] is True
    assert second["created"] is False
    assert second["generation"]["id"] == first["generation"]["id"]
    page = await client.query("{ generations(first: 10) { edges { node { id } } } }")
    assert [e["node"]["id"] for e in page["generations"]["edges"]] == [first["generation"]["id"]]
    await finished(client, first["generation"]["id"])  # nothing of this test runs on into the next


@pytest.mark.usefixtures("worker")
async def test_an_unexpected_error_in_the_job_is_retried_not_left_running(
    make_client: MakeClient, worker: SafelightWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = worker.ctx["runtime"].store
    real_put = store.put_output
    failures = []

    async def put_failing_once(data: bytes, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            raise RuntimeError("disk on fire")
        return await real_put(data, **kwargs)

    monkeypatch.setattr(store, "put_output", put_failing_once)
    client = await make_client()
    gid = await create(client)
    generation = await finished(client, gid)
    assert generation["status"] == "SUCCEEDED"
    assert generation["attempt"] == 2
    assert failures == [1]
