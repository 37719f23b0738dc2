"""The GraphQL API over HTTP: typed validation errors, visibility, pagination, images, schema."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comfy.fake.server import FakeHandle
from db.images import add_image
from db.models import Generation
from db.states import Status
from db.transitions import create_generation
from db.users import user_by_token
from graph.app import create_app
from graph.context import Context
from graph.loaders import Loaders
from graph.schema import build_schema, schema_sdl
from settings import Settings
from tests.stack import CREATE, GENERATION_EVENTS, GraphQLClient, serve

MakeClient = Callable[..., Awaitable[GraphQLClient]]
BASE = {"prompt": "a quiet harbour", "width": 64, "height": 64, "steps": 2}
ROOT = Path(__file__).resolve().parents[2]


async def create_result(client: GraphQLClient, **overrides: Any) -> dict[str, Any]:
    data = await client.query(CREATE, {"input": {**BASE, **overrides}})
    result: dict[str, Any] = data["createGeneration"]
    return result


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 5000}, "prompt"),
        ({"negativePrompt": "x" * 5000}, "negativePrompt"),
        ({"width": 100}, "width"),
        ({"width": 8}, "width"),
        ({"height": 4096}, "height"),
        ({"steps": 0}, "steps"),
        ({"steps": 1000}, "steps"),
        ({"cfg": -1.0}, "cfg"),
        ({"cfg": 31.0}, "cfg"),
        ({"sampler": "no_such_sampler"}, "sampler"),
        ({"scheduler": "sometimes"}, "scheduler"),
        ({"checkpoint": "missing.safetensors"}, "checkpoint"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": 2.0**60}, "seed"),
        ({"batchSize": 0}, "batchSize"),
        ({"batchSize": 64}, "batchSize"),
        ({"loras": [{"name": "nope.safetensors", "strength": 1.0}]}, "loras[0].name"),
        ({"loras": [{"name": "add_detail.safetensors", "strength": 9.0}]}, "loras[0].strength"),
        ({"loras": [{"name": "add_detail.safetensors", "strength": 0.5}] * 9}, "loras"),
        ({"template": "no-such-template"}, "template"),
        ({"extra": {"bogus": 1}}, "bogus"),
    ],
)
async def test_each_invalid_parameter_is_named(make_client: MakeClient, overrides: dict[str, Any], field: str) -> None:
    client = await make_client()
    result = await create_result(client, **overrides)
    assert result["__typename"] == "ValidationError", result
    assert field in [e["field"] for e in result["errors"]], result["errors"]
    page = await client.query("{ generations(first: 5) { edges { node { id } } } }")
    assert page["generations"]["edges"] == [], "nothing may be queued for an invalid request"


async def test_several_problems_are_reported_at_once(make_client: MakeClient) -> None:
    client = await make_client()
    result = await create_result(client, width=7, steps=0, sampler="nope")
    assert {e["field"] for e in result["errors"]} >= {"width", "steps", "sampler"}


async def test_anonymous_requests_are_refused(api_url: str) -> None:
    anonymous = GraphQLClient(api_url, None)
    try:
        result = (await anonymous.query(CREATE, {"input": BASE}))["createGeneration"]
        assert result["__typename"] == "NotAllowedError"
        assert (await anonymous.query("{ viewer { id } }"))["viewer"] is None
        listing = await anonymous.execute("{ generations { edges { node { id } } } }")
        assert "authentication required" in listing["errors"][0]["message"]
        bad_token = GraphQLClient(api_url, "not-a-token")
        assert (await bad_token.query("{ viewer { id } }"))["viewer"] is None
        await bad_token.aclose()
    finally:
        await anonymous.aclose()


async def test_websocket_without_token_is_rejected(api_url: str) -> None:
    url = "ws" + api_url.removeprefix("http") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        with pytest.raises(websockets.ConnectionClosed) as excinfo:
            await asyncio.wait_for(ws.recv(), 5)
    assert excinfo.value.rcvd is not None
    assert excinfo.value.rcvd.code == 4403


@pytest.mark.usefixtures("worker")
async def test_another_users_generation_is_invisible_everywhere(make_client: MakeClient) -> None:
    alice, bob, admin = await make_client(), await make_client(), await make_client(admin=True)
    created = await create_result(alice)
    gid = created["generation"]["id"]
    assert (await bob.query("query($id: ID!) { generation(id: $id) { id } }", {"id": gid}))["generation"] is None
    listing = await bob.query("{ generations(first: 50) { edges { node { id } } } }")
    assert gid not in [e["node"]["id"] for e in listing["generations"]["edges"]]
    for mutation in ("cancelGeneration", "retryGeneration", "deleteGeneration"):
        result = await bob.query(f"mutation($id: ID!) {{ {mutation}(id: $id) {{ __typename }} }}", {"id": gid})
        assert result[mutation]["__typename"] == "NotFoundError"
    url = "ws" + bob.base_url.removeprefix("http") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {bob.token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": GENERATION_EVENTS, "variables": {"id": gid}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    # An error raised while the subscription runs arrives as a result with errors (then `complete`).
    assert message["type"] == "next"
    assert message["payload"]["data"] is None
    assert "no generation" in message["payload"]["errors"][0]["message"]
    seen = await admin.query("query($id: ID!) { generation(id: $id) { id owner { name } } }", {"id": gid})
    assert seen["generation"]["id"] == gid


@pytest.mark.usefixtures("worker")
async def test_pagination_filters_and_search(make_client: MakeClient) -> None:
    client = await make_client()
    ids = []
    for i in range(5):
        prompt = f"lighthouse number {i}" if i % 2 == 0 else f"forest number {i}"
        ids.append((await create_result(client, prompt=prompt))["generation"]["id"])
    query = """query($after: String, $search: String, $status: [Status!]) {
      generations(first: 2, after: $after, search: $search, status: $status) {
        edges { cursor node { id prompt } } pageInfo { hasNextPage endCursor }
      } }"""
    seen: list[str] = []
    after = None
    while True:
        page = (await client.query(query, {"after": after}))["generations"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ids[::-1]
    lighthouses = (await client.execute(query.replace("first: 2", "first: 10"), {"search": "LIGHTHOUSE"}))["data"]
    assert len(lighthouses["generations"]["edges"]) == 3
    bad = await client.execute(query, {"after": "garbage"})
    assert bad["errors"][0]["message"] == "invalid cursor"


async def test_a_page_of_50_with_images_costs_a_fixed_number_of_queries(
    make_client: MakeClient, engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """DataLoaders: the page, its images and their owners in three statements, not one per row."""
    client = await make_client(admin=True)
    async with session_factory() as session:
        viewer = await user_by_token(session, token=client.token or "")
        assert viewer is not None
        for i in range(50):
            change, _ = await create_generation(
                session, owner_id=viewer.id, template="txt2img", params={"prompt": "p"}, prompt="p", seed=i
            )
            for index in range(2):
                await add_image(
                    session, generation_id=change.generation.id, index=index, content_hash=f"{i:032x}{index:032x}",
                    mime="image/png", width=64, height=64, seed=i, size_bytes=10, node_id="9",
                )  # fmt: skip
        # Finished rows: the workers' recovery must not mistake them for queued work it lost.
        await session.execute(
            update(Generation).where(Generation.owner_id == viewer.id).values(status=Status.SUCCEEDED)
        )
        await session.commit()
    # Schema level, on this test's engine, so only these statements are counted.
    state = SimpleNamespace(sessions=session_factory, settings=SimpleNamespace(public_url="http://test"))
    context = Context(state=state, request=None, response=None, loaders=Loaders.create(session_factory))  # type: ignore[arg-type]
    context.viewer_row = viewer
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    query = "{ generations(first: 50) { edges { node { id images { url } owner { name } } } } }"
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        result = await build_schema().execute(query, context_value=context)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert result.errors is None, result.errors
    assert result.data is not None
    edges = result.data["generations"]["edges"]
    assert len(edges) == 50
    assert all(len(e["node"]["images"]) == 2 for e in edges)
    assert all(e["node"]["images"][0]["url"].startswith("http://test/images/") for e in edges)
    assert len(statements) == 3, statements


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert committed == schema_sdl(), "schema.graphql is stale: run `safelight export-schema -o schema.graphql`"


async def test_image_urls_and_malformed_hashes(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as http:
        for path in ("/images/%2e%2e%2fsettings.py", "/images/" + "g" * 64, "/images/" + "a" * 64,
                     "/images/..%2f..%2fpyproject.toml", "/thumbs/256/" + "a" * 63, "/thumbs/999/" + "a" * 64,
                     "/previews/short", "/previews/%2e%2e%2f%2e%2e%2fx"):  # fmt: skip
            response = await http.get(path)
            assert response.status_code == 404, path
    # A raw request line, so no client normalises the dots away before the server sees them.
    host, port = api_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /images/../../pyproject.toml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert b"[project]" not in raw
    assert raw.split(b"\r\n", 1)[0] == b"HTTP/1.1 404 Not Found"


async def test_health_and_metrics(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = (await http.get("/readyz")).json()
        assert ready == {"ready": True, "checks": {"database": "ok", "redis": "ok", "backends": "ok"}}
        metrics = (await http.get("/metrics")).text
        assert "safelight_subscribers" in metrics
        graphiql = await http.get("/graphql", headers={"Accept": "text/html"})
        assert graphiql.status_code == 200
        assert "graphiql" in graphiql.text.lower()


@pytest.mark.usefixtures("worker")
async def test_system_status_for_admins_only(make_client: MakeClient, fake: FakeHandle) -> None:
    admin, user = await make_client(admin=True), await make_client()
    query = """{ systemStatus { fingerprint queued running arqQueueDepth
        workers { id settingsMatch comfyuiUrls concurrency }
        backends { url healthy devices { name vramTotal } } } }"""
    status = (await admin.query(query))["systemStatus"]
    assert status["workers"], "the session worker reports itself"
    assert all(w["settingsMatch"] for w in status["workers"])
    assert status["workers"][0]["comfyuiUrls"] == [fake.url]
    assert status["backends"] == [{"url": fake.url, "healthy": True, "devices": status["backends"][0]["devices"]}]
    assert status["backends"][0]["devices"]
    denied = await user.execute(query)
    assert denied["errors"][0]["message"] == "system status is for admins"


async def test_client_routes_get_the_app_and_files_stay_files(stack_settings: Settings, tmp_path: Path) -> None:
    """A reload on /history serves the app's index; real files are served as they are."""
    (tmp_path / "index.html").write_text("<!doctype html><title>Safelight</title>")
    (tmp_path / "app.js").write_text("console.log(1)")
    async with serve(create_app(stack_settings, frontend_dir=tmp_path)) as url, httpx.AsyncClient(base_url=url) as http:
        for path in ("/", "/history", "/generations/123"):
            response = await http.get(path)
            assert response.status_code == 200, path
            assert "<title>Safelight</title>" in response.text
        assert (await http.get("/app.js")).text == "console.log(1)"
        assert (await http.get("/images/" + "a" * 64)).status_code == 404


async def test_depth_limit_and_syntax_errors_are_reported_and_cached_documents_stay_valid() -> None:
    """The depth rule runs with validation (graph/schema.py `_DocumentChecks`), also when parse/validate are cached."""
    schema = build_schema(max_depth=3)
    deep = "{ generations { edges { node { owner { name } } } } }"
    for _ in range(2):  # the second run comes from the caches
        result = await schema.execute(deep)
        assert result.errors and "exceeds maximum operation depth of 3" in result.errors[0].message
    result = await schema.execute("{ generations { edges ")
    assert result.errors and "Syntax Error" in result.errors[0].message
    result = await schema.execute("{ nope }")
    assert result.errors and "Cannot query field 'nope'" in result.errors[0].message


PRIVATE = "the database said something private"


async def fail_privately(*_: Any, **__: Any) -> Any:
    """A stand-in for a database call that fails with a message no client may see."""
    raise RuntimeError(PRIVATE)


def logged_privately(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r for r in caplog.records if r.exc_info and PRIVATE in str(r.exc_info[1])]


async def test_over_http_an_unexpected_failure_is_masked_and_an_expected_one_is_not(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from graph import queries

    client = await make_client()
    monkeypatch.setattr(queries.generation_reads, "get_generation", fail_privately)
    with caplog.at_level("ERROR"):
        result = await client.execute(
            "query($id: ID!) { generation(id: $id) { id } }", {"id": "00000000-0000-4000-8000-000000000000"}
        )
    (error,) = result["errors"]
    assert error["message"] == "Unexpected error (see the logs)" and len(error["extensions"]["errorId"]) == 12
    assert PRIVATE not in json.dumps(result)
    assert logged_privately(caplog)
    anonymous = GraphQLClient(client.base_url, None)
    listing = await anonymous.execute("{ generations { edges { node { id } } } }")
    await anonymous.aclose()
    assert "authentication required" in listing["errors"][0]["message"]  # expected: shown as it is
