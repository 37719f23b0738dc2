"""Websockets and dev mode under hostile clients: Origin, Host, init timeouts, connection caps, headers, metrics."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from pydantic import SecretStr

from graph.app import create_app
from settings import Settings
from tests.stack import LEGACY_WS, TRANSPORT_WS, GraphQLClient, serve

MakeClient = Callable[..., Awaitable[GraphQLClient]]
SET_BACKENDS = 'mutation { setBackends(urls: ["http://attacker.example:8188"]) { __typename } }'


def _ws(url: str) -> str:
    return "ws" + url.removeprefix("http") + "/graphql"


async def _closed_code(ws: Any, wait_s: float = 10.0) -> int:
    """The close code the server sends (reading and dropping anything before it)."""
    try:
        async with asyncio.timeout(wait_s):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else -1


async def _handshake_status(url: str, host: str) -> bytes:
    """The status line a raw websocket handshake with this Host header gets."""
    address, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(address, int(port))
    writer.write(
        f"GET /graphql HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n".encode()
    )
    status = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    await writer.wait_closed()
    return status.strip()


@pytest.fixture
async def dev_api(stack_settings: Settings) -> AsyncIterator[str]:
    settings = stack_settings.model_copy(
        update={"dev_mode": True, "dev_token": SecretStr("dev-token-for-guards-tests"), "ws_init_timeout_s": 0.5}
    )
    async with serve(create_app(settings)) as url:
        yield url


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_foreign_origin_cannot_open_a_websocket_even_in_dev_mode(dev_api: str, protocol: str) -> None:
    """Before: any page could open a socket without a token and run setBackends as the dev admin."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(_ws(dev_api), subprotocols=[protocol], origin="http://evil.example"):  # type: ignore[list-item,arg-type]
            pass
    assert refused.value.response.status_code == 403
    # The app's own origin (what the browser sends for a page served here) still works, as the dev user.
    host = dev_api.removeprefix("http://")
    async with websockets.connect(_ws(dev_api), subprotocols=[protocol], origin=f"http://{host}") as ws:  # type: ignore[list-item,arg-type]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"


async def test_dev_mode_answers_only_requests_for_this_machine(dev_api: str) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    async with httpx.AsyncClient(base_url=dev_api) as http:
        assert (await http.get("/dev/token")).json()["token"] == "dev-token-for-guards-tests"
        foreign = await http.get("/dev/token", headers={"Host": "evil.example:8000"})
        assert foreign.status_code == 421 and "token" not in foreign.text
        mutation = await http.post("/graphql", json={"query": SET_BACKENDS}, headers={"Host": "evil.example"})
        assert mutation.status_code == 421
        for host in ("localhost:5173", "127.0.0.1", "[::1]:8000"):
            assert (await http.get("/healthz", headers={"Host": host})).status_code == 200, host
    host = dev_api.removeprefix("http://")
    assert await _handshake_status(dev_api, host) == b"HTTP/1.1 101 Switching Protocols"
    assert (await _handshake_status(dev_api, "evil.example")).startswith(b"HTTP/1.1 403")


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_socket_that_never_initialises_is_closed(dev_api: str, protocol: str) -> None:
    """Before: legacy graphql-ws sockets without connection_init stayed open for ever (20,000 used up the fds)."""
    async with websockets.connect(_ws(dev_api), subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        assert await _closed_code(ws) == 4408


async def test_unauthenticated_sockets_are_capped_and_leave_room_for_authenticated_ones(
    stack_settings: Settings, make_client: MakeClient
) -> None:
    settings = stack_settings.model_copy(
        update={"ws_max_unauthenticated_per_client": 3, "ws_max_unauthenticated": 3, "ws_max_connections": 6}
    )
    user = await make_client()
    async with serve(create_app(settings)) as url:
        idle = [await websockets.connect(_ws(url), subprotocols=[LEGACY_WS]) for _ in range(3)]  # type: ignore[list-item]
        try:
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(_ws(url), subprotocols=[LEGACY_WS]):  # type: ignore[list-item]
                    pass
            assert refused.value.response.status_code == 403
            # Authenticated work still gets in once the idle ones are gone... and before that, it is the
            # unauthenticated share that is full, not the process: close one idle socket, and an
            # authenticated client takes its place and keeps working.
            await idle.pop().close()
            client = GraphQLClient(url, user.token)
            try:
                for _ in range(50):  # the server counts the closed socket out once its handler ends
                    try:
                        async with client.subscription("subscription { myGenerationEvents { seq } }"):
                            break
                    except websockets.InvalidStatus:
                        await asyncio.sleep(0.05)
                else:
                    raise AssertionError("an authenticated client found no room")
            finally:
                await client.aclose()
        finally:
            for ws in idle:
                await ws.close()


async def test_oversized_tokens_are_refused_and_not_cached(api_url: str) -> None:
    async with websockets.connect(_ws(api_url), subprotocols=[TRANSPORT_WS], max_size=None) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": "Bearer " + "x" * 100_000}}))
        assert await _closed_code(ws) == 4403


async def test_security_headers_and_real_content_types(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as http:
        for path in ("/healthz", "/graphql", "/images/x/0", "/previews/abcdefgh"):
            response = await http.get(path, headers={"Accept": "text/html"})
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
            assert response.headers["referrer-policy"] == "same-origin", path


async def test_graphiql_and_introspection_can_be_turned_off(stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(update={"graphiql": False, "graphql_introspection": False})
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/graphql", headers={"Accept": "text/html"})).status_code == 404
        result = (await http.post("/graphql", json={"query": "{ __schema { types { name } } }"})).json()
        assert "introspection" in result["errors"][0]["message"]


async def test_metrics_need_their_token_when_one_is_set(stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(update={"metrics_token": SecretStr("m-token")})
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
        allowed = await http.get("/metrics", headers={"Authorization": "Bearer m-token"})
        assert allowed.status_code == 200 and "safelight_subscribers" in allowed.text
        assert "safelight_websockets_unauthenticated" in allowed.text


def test_nginx_proxies_every_path_the_api_serves_to_browsers(stack_settings: Settings) -> None:
    """Before: /thumbs/ and /previews/ were not proxied, so behind nginx they returned the app's page."""
    from pathlib import Path

    from starlette.routing import Route, WebSocketRoute

    conf = (Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf").read_text()
    internal = {"metrics", "dev"}  # scraped on the API's own address / dev mode only, never behind the proxy
    prefixes = {
        route.path.strip("/").split("/")[0]
        for route in create_app(stack_settings).routes
        if isinstance(route, Route | WebSocketRoute)
    } - internal
    assert prefixes >= {"graphql", "images", "thumbs", "previews", "healthz", "readyz"}
    for prefix in sorted(prefixes):
        proxied = f"location /{prefix}/ {{" in conf or f"location /{prefix} {{" in conf or f"|{prefix})" in conf
        proxied = proxied or f"({prefix}|" in conf
        assert proxied, f"deploy/nginx.conf does not proxy /{prefix}"
    assert "client_max_body_size 1m;" in conf


@pytest.mark.parametrize(
    "message",
    [
        '{"id": "1", "type": "subscribe", "payload": {"query": "subscription { myGenerationEvents { seq } }", '
        '"variables": {"x": NaN}}}',
        '{"id": "1", "type": "subscribe", "payload": {"query": "{ viewer { name } }", "variables": {"x": "\\u0000"}}}',
        '{"id": "1", "type": "subscribe", "payload": ' + "[" * 50_000 + "]" * 50_000 + "}",
    ],
    ids=["nan", "nul", "deep"],
)
async def test_a_malformed_websocket_message_closes_as_invalid(make_client: MakeClient, message: str) -> None:
    client = await make_client()
    async with websockets.connect(_ws(client.base_url), subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {client.token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(message)
        assert await _closed_code(ws) == 4400


async def test_long_subscription_documents_on_the_websocket(make_client: MakeClient) -> None:
    """Texts over 8 KB are parsed in a thread on the websocket too; one over the token limit says so."""
    client = await make_client()
    long_valid = "subscription {" + " " * 10_000 + "myGenerationEvents { seq } }"
    too_many = "subscription {" + " a" * 6_000 + " }"
    async with websockets.connect(_ws(client.base_url), subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {client.token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "bad", "type": "subscribe", "payload": {"query": too_many}}))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert refused["type"] == "error" and refused["id"] == "bad", refused
        assert "more than 5,000 tokens" in refused["payload"][0]["message"]
        await ws.send(json.dumps({"id": "ok", "type": "subscribe", "payload": {"query": long_valid}}))
        await ws.send(json.dumps({"id": "ok", "type": "complete"}))
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "pong"  # the socket still works


async def test_a_document_that_does_not_parse_is_a_client_error_on_both_protocols(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the parse error escaped strawberry's stream: an ERROR with a traceback, the client told nothing."""
    client = await make_client()
    init = json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {client.token}"}})
    with caplog.at_level(logging.INFO):
        async with websockets.connect(_ws(client.base_url), subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
            await ws.send(init)
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "subscription {"}}))
            assert await _closed_code(ws) == 4400  # graphql-transport-ws: a syntax error closes the socket
        async with websockets.connect(_ws(client.base_url), subprotocols=[LEGACY_WS]) as ws:  # type: ignore[list-item]
            await ws.send(init)
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            for query in ("subscription {", "subscription {" + " a" * 6_000 + " }"):
                await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": query}}))
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert message["type"] == "error" and message["id"] == "1", message
                assert "Syntax Error" in message["payload"]["message"] or "tokens" in message["payload"]["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records


async def test_dev_mode_refuses_cross_site_requests_that_skip_preflight(dev_api: str) -> None:
    """A foreign page can send "simple" requests without a CORS preflight: none of them may act as the dev admin."""
    body = json.dumps({"query": SET_BACKENDS})
    async with httpx.AsyncClient(base_url=dev_api) as http:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            response = await http.post(
                "/graphql", content=body, headers={"Content-Type": content_type, "Origin": "http://evil.example"}
            )
            assert response.status_code in (400, 415), (content_type, response.status_code, response.text)
        mutation_by_get = await http.get("/graphql", params={"query": SET_BACKENDS})
        assert mutation_by_get.status_code in (400, 405), mutation_by_get.text
        preflight = await http.options(
            "/graphql", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers
