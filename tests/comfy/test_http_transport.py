"""ComfyClient's own HTTP/1.1 transport against raw servers: keep-alive, framing, closes, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from email import message_from_bytes, policy

import httpx
import pytest

from comfy.client import ComfyClient, UploadTooLargeError
from comfy.errors import ComfyResponseTooLarge, ComfyUnavailable
from comfy.events import OutputImage
from comfy.transport import Http11Transport

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


# -- request bodies: multipart uploads, chunked framing -------------------------------------------


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One request as a server reads it: the request line, headers (lower-cased names), the body
    de-framed by Content-Length or chunked Transfer-Encoding."""
    head = await reader.readuntil(b"\r\n\r\n")
    line, *rest = head[:-4].split(b"\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(b":") for h in rest)}
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
            parts.append(await reader.readexactly(size))
            assert await reader.readexactly(2) == b"\r\n"
        assert await reader.readuntil(b"\r\n") == b"\r\n"
        return line, headers, b"".join(parts)
    return line, headers, await reader.readexactly(int(headers.get(b"content-length", b"0")))


def _form_parts(headers: dict[bytes, bytes], body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A multipart/form-data body → {field: (file name, bytes)}, parsed by the standard library."""
    message = message_from_bytes(b"Content-Type: " + headers[b"content-type"] + b"\r\n\r\n" + body, policy=policy.HTTP)
    assert message.is_multipart()
    parts: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(payload, bytes)
        parts[name] = (part.get_filename(), payload)
    return parts


@contextlib.asynccontextmanager
async def recording_server(
    answer: Callable[[bytes, dict[bytes, bytes], bytes], bytes],
) -> AsyncIterator[tuple[str, list[tuple[bytes, dict[bytes, bytes], bytes]], list[int]]]:
    """A keep-alive server that records every request it read, whatever its framing."""
    seen: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(0)
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except asyncio.IncompleteReadError:
                    return
                seen.append(request)
                connections[-1] += 1
                writer.write(answer(*request))
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen, connections
    finally:
        server.close()
        await server.wait_closed()


PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # every byte value, CRLFs included


async def test_upload_image_sends_a_multipart_body_the_server_reads() -> None:
    def stored(line: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        if line.startswith(b"POST /upload/image "):
            name = _form_parts(headers, body)["image"][0]
            return _json({"name": name, "subfolder": "", "type": "input"})
        return _json({"queue_running": [], "queue_pending": []})

    async with recording_server(stored) as (url, seen, connections), ComfyClient(url) as client:
        name = await client.upload_image("safelight-abc.png", PNG_BYTES)
        assert (await client.queue()).pending == ()  # the same connection still frames correctly
    assert name == "safelight-abc.png"
    line, headers, body = seen[0]
    assert line == b"POST /upload/image HTTP/1.1"
    assert headers[b"content-type"].startswith(b"multipart/form-data; boundary=")
    assert int(headers[b"content-length"]) == len(body)
    parts = _form_parts(headers, body)
    assert parts["image"] == ("safelight-abc.png", PNG_BYTES)
    assert parts["overwrite"] == (None, b"true") and parts["type"] == (None, b"input")
    assert connections == [2]


async def test_upload_mask_sends_the_original_ref_and_returns_the_subfolder_name() -> None:
    def stored(line: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        return _json({"name": "m.png", "subfolder": "clipspace", "type": "input"})

    async with recording_server(stored) as (url, seen, _), ComfyClient(url) as client:
        name = await client.upload_mask("m.png", PNG_BYTES, {"filename": "a.png", "subfolder": "", "type": "input"})
    assert name == "clipspace/m.png"
    parts = _form_parts(seen[0][1], seen[0][2])
    assert seen[0][0] == b"POST /upload/mask HTTP/1.1"
    assert json.loads(parts["original_ref"][1]) == {"filename": "a.png", "subfolder": "", "type": "input"}
    assert parts["image"] == ("m.png", PNG_BYTES)


async def test_a_chunked_request_body_is_framed_and_the_connection_reused() -> None:
    def echo_length(line: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        return _json({"length": len(body), "first": body[:4].decode()})

    async def stream(count: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            yield b"abcd" * 1000

    async with (
        recording_server(echo_length) as (url, seen, connections),
        httpx.AsyncClient(base_url=url, transport=Http11Transport()) as http,
    ):
        first = await http.post("/x", content=stream(3))  # no length known: httpx announces chunked
        empty = await http.post("/y", content=stream(0))
        plain = await http.post("/z", content=b"hello")
    assert seen[0][1][b"transfer-encoding"] == b"chunked"
    assert first.json() == {"length": 12000, "first": "abcd"}
    assert empty.json() == {"length": 0, "first": ""}
    assert plain.json() == {"length": 5, "first": "hell"}
    assert connections == [3]


async def test_has_input_asks_with_head() -> None:
    def view(line: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        if b"filename=there.png" in line:
            return b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1234\r\n\r\n"
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

    async with recording_server(view) as (url, seen, connections), ComfyClient(url) as client:
        assert await client.has_input("there.png") is True
        assert await client.has_input("gone.png") is False
        assert await client.has_input("clipspace/there.png") is True
        with pytest.raises(ValueError, match="plain file name"):
            await client.has_input("../there.png")
    assert [line.split(b" ")[0] for line, _, _ in seen] == [b"HEAD", b"HEAD", b"HEAD"]
    assert b"subfolder=&type=input" in seen[0][0] and b"subfolder=clipspace&" in seen[2][0]
    assert connections == [3]


async def test_uploads_are_bounded_and_names_plain() -> None:
    def never(line: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        raise AssertionError("nothing should be sent")

    async with recording_server(never) as (url, seen, _), ComfyClient(url) as client:
        with pytest.raises(UploadTooLargeError, match="upload limit of 100"):
            await client.upload_image("a.png", b"x" * 101, max_bytes=100)
        for bad in ("", "../a.png", "sub/a.png", "a\\b.png", " a.png", "x" * 256):
            with pytest.raises(ValueError, match="plain file name"):
                await client.upload_image(bad, b"x")
    assert seen == []


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
async def test_an_answer_over_the_limit_is_refused_before_it_is_read_whole(framing: str) -> None:
    """A backend that answers /view with more than the request accepts: ComfyResponseTooLarge, while the
    server is still sending (it never ends here), and the connection is not kept."""
    body = b"x" * 4096

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if framing == "content-length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 40))
        elif framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):  # 4 MB, never the end of the body
                writer.write(b"%x\r\n%s\r\n" % (len(body), body) if framing == "chunked" else body)
                await writer.drain()
        await asyncio.sleep(30)

    output = OutputImage("a.png", "", "output")
    async with raw_server(endless) as (url, _), ComfyClient(url) as client:
        with pytest.raises(ComfyResponseTooLarge, match="larger than the limit of 65536 bytes"):
            await asyncio.wait_for(client.view(output, max_bytes=64 * 1024), 10)


async def test_an_answer_within_the_limit_is_read() -> None:
    async def small(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    async with raw_server(small) as (url, _), ComfyClient(url) as client:
        assert await client.view(OutputImage("a.png", "", "output"), max_bytes=5) == b"hello"
