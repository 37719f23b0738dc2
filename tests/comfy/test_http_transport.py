"""ComfyClient's own HTTP/1.1 transport against raw servers: keep-alive, framing, closes, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from comfy.client import ComfyClient
from comfy.errors import ComfyUnavailable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on loopback; yields its URL and the number of requests each connection carried."""
    per_connection: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        per_connection.append(0)
        index = len(per_connection) - 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                per_connection[index] += 1
                await handler(reader, writer)
                if writer.is_closing():
                    return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", per_connection
    finally:
        server.close()
        await server.wait_closed()


def _json(body: object, *, extra: bytes = b"") -> bytes:
    data = json.dumps(body).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (
        extra,
        len(data),
        data,
    )


async def test_keep_alive_reuses_one_connection() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_json({"queue_running": [], "queue_pending": []}))

    async with raw_server(answer) as (url, per_connection), ComfyClient(url) as client:
        for _ in range(3):
            assert (await client.queue()).pending == ()
    assert per_connection == [3]


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_json({"queue_running": [], "queue_pending": []}))
        await writer.drain()
        writer.close()  # no "Connection: close": the client finds out from the socket

    async with raw_server(answer_then_close) as (url, per_connection), ComfyClient(url) as client:
        await client.queue()
        await asyncio.sleep(0.05)
        await client.queue()
    assert per_connection == [1, 1]


async def test_chunked_and_close_delimited_bodies() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = json.dumps({"p": {"status": {"status_str": "success", "completed": True}}}).encode()
        half = len(data) // 2
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, data[:half], len(data) - half, data[half:])
        )

    async with raw_server(chunked) as (url, _), ComfyClient(url) as client:
        entry = await client.history("p")
        assert entry is not None and entry.succeeded

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + json.dumps({}).encode())
        await writer.drain()
        writer.close()

    async with raw_server(until_close) as (url, per_connection), ComfyClient(url) as client:
        assert await client.history("p") is None
        assert await client.history("p") is None
    assert per_connection == [1, 1]


async def test_silence_and_refusal_are_unavailable() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with raw_server(never) as (url, _), ComfyClient(url, timeout=0.2) as client:
        with pytest.raises(ComfyUnavailable, match="timed out"):
            await client.queue()

    async with raw_server(never) as (url, _):
        pass  # closed: nothing listens on that port any more
    async with ComfyClient(url, timeout=2) as client:
        with pytest.raises(ComfyUnavailable, match="failed"):
            await client.queue()


async def test_a_garbled_answer_is_unavailable() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        writer.close()

    async with raw_server(garbage) as (url, _), ComfyClient(url) as client:
        with pytest.raises(ComfyUnavailable):
            await client.queue()
