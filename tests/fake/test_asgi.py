"""The fake's own ASGI server (comfy.fake.asgi): HTTP/1.1 and websockets as its clients use them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from comfy.fake import asgi

EVENTS: list[str] = []


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"x-method": request.method, "x-path": request.url.path, "x-query": request.url.query},
    )


async def stream(request: Request) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        for index in range(3):
            yield b"part%d;" % index

    return StreamingResponse(parts(), media_type="text/plain")


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


async def ws_echo(websocket: WebSocket) -> None:
    if websocket.query_params.get("refuse"):
        await websocket.close()
        return
    protocols = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol=protocols[0] if protocols else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                EVENTS.append(f"disconnect {message.get('code')}")
                return
            if message.get("text") == "close please":
                await websocket.close(code=4001, reason="asked")
                return
            if message.get("text") is not None:
                await websocket.send_text("echo " + message["text"])
            else:
                await websocket.send_bytes(b"echo " + message["bytes"])
    except WebSocketDisconnect as ex:
        EVENTS.append(f"disconnect {ex.code}")


async def ws_wait(websocket: WebSocket) -> None:
    await websocket.accept()
    message = await websocket.receive()
    EVENTS.append(f"wait {message['type']} {message.get('code')}")


def make_app() -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        EVENTS.append("startup")
        yield
        EVENTS.append("shutdown")

    return Starlette(
        routes=[
            Route("/echo/{rest:path}", echo, methods=["GET", "POST", "HEAD"]),
            Route("/stream", stream),
            Route("/boom", boom),
            WebSocketRoute("/ws", ws_echo),
            WebSocketRoute("/wait", ws_wait),
        ],
        lifespan=lifespan,
    )


@pytest.fixture
async def server() -> AsyncIterator[str]:
    EVENTS.clear()
    async with asgi.serving(make_app()) as (host, port):
        assert EVENTS == ["startup"]
        yield f"{host}:{port}"
    assert EVENTS[-1] == "shutdown"


async def _raw(address: str, data: bytes, *, until: bytes, reads: int = 1) -> bytes:
    """Send raw bytes on a fresh connection; read until `until` has been seen `reads` times."""
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        got = b""
        while got.count(until) < reads:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            got += chunk
        return got
    finally:
        writer.close()


async def test_keep_alive_paths_queries_and_bodies(server: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://{server}") as http:
        for index in range(3):
            got = await http.post("/echo/a%20b", params={"x": str(index), "y": "é"}, content=b"body %d" % index)
            assert got.status_code == 200
            assert got.content == b"body %d" % index
            assert got.headers["x-path"] == "/echo/a b"
            assert got.headers["x-query"] == f"x={index}&y=%C3%A9"
            assert got.headers["content-length"] == str(len(got.content))
            assert "date" in got.headers

        # a chunked request body
        async def chunks() -> AsyncIterator[bytes]:
            for part in (b"one ", b"two ", b"three"):
                yield part

        got = await http.post("/echo/c", content=chunks())
        assert got.content == b"one two three"


async def test_head_has_no_body_but_its_length(server: str) -> None:
    reply = await _raw(server, b"HEAD /echo/x HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc", until=b"\r\n\r\n")
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 3\r\n" in head + b"\r\n"
    assert rest == b""


async def test_streaming_response_is_chunked(server: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://{server}") as http:
        got = await http.get("/stream")
    assert got.headers["transfer-encoding"] == "chunked"
    assert got.content == b"part0;part1;part2;"


async def test_pipelined_requests_answer_in_order(server: str) -> None:
    requests = b"".join(
        b"POST /echo/%d HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n%02d" % (index, index) for index in range(5)
    )
    reply = await _raw(server, requests, until=b"HTTP/1.1 200", reads=5)
    for index in range(5):
        reply = reply[reply.index(b"x-path: /echo/%d" % index) :]
    assert reply.endswith(b"04")


async def test_expect_100_continue(server: str) -> None:
    host, port = server.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"POST /echo/e HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"data")
        final = await asyncio.wait_for(reader.readuntil(b"data"), 5)
        assert final.startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        writer.close()


async def test_connection_close_and_errors(server: str) -> None:
    reply = await _raw(server, b"GET /echo/c HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", until=b"\0")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in reply  # and the server closed: _raw read to the end
    reply = await _raw(server, b"GET /boom HTTP/1.1\r\nhost: x\r\n\r\n", until=b"Error")
    assert reply.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    reply = await _raw(server, b"NOT HTTP AT ALL\r\n\r\n", until=b"\0")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    async with httpx.AsyncClient(base_url=f"http://{server}") as http:
        assert (await http.get("/nowhere")).status_code == 404


async def test_websocket_messages_both_ways(server: str) -> None:
    async with connect(f"ws://{server}/ws", subprotocols=[Subprotocol("comfy")], max_size=None) as ws:
        assert ws.subprotocol == "comfy"
        await ws.send("hello")
        assert await ws.recv() == "echo hello"
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"echo \x00\x01"
        await ws.send(["frag", "mented"])  # one message in three frames
        assert await ws.recv() == "echo fragmented"
        large = "x" * 200_000
        await ws.send(large)
        assert await ws.recv() == "echo " + large
        pong = await ws.ping()
        await asyncio.wait_for(pong, 5)
    for _ in range(500):  # the server learns of the close after the client's handshake ends
        if "disconnect 1000" in EVENTS:
            break
        await asyncio.sleep(0.01)
    assert "disconnect 1000" in EVENTS


async def test_websocket_closed_by_the_app(server: str) -> None:
    async with connect(f"ws://{server}/ws") as ws:
        await ws.send("close please")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "asked")


async def test_websocket_refused_before_accept(server: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://{server}/ws?refuse=1"):
            pass
    assert refused.value.response.status_code == 403


async def test_open_websockets_are_closed_when_serving_stops() -> None:
    EVENTS.clear()
    async with asgi.serving(make_app()) as (host, port):
        ws = await connect(f"ws://{host}:{port}/wait")
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert EVENTS == ["startup", "wait websocket.disconnect 1012", "shutdown"]


async def test_a_failed_startup_raises() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(RuntimeError, match="no database"):
        async with asgi.serving(app):
            pass
