"""A keep-alive HTTP/1.1 transport for httpx, for the worker's calls to plain-HTTP ComfyUI servers."""

from __future__ import annotations

import asyncio

import httpx

__all__ = ["MAX_BODY_EXTENSION", "Http11Transport", "ResponseTooLarge"]

# A request extension (httpx passes a request's `extensions` to its transport): the largest response
# body this request accepts, in bytes. Without it the transport's own `max_body_bytes` holds.
MAX_BODY_EXTENSION = "safelight.max_body_bytes"


class ResponseTooLarge(httpx.RemoteProtocolError):
    """A response body over the limit: refused before it is read whole (the connection is closed)."""


class Http11Transport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 over asyncio streams, for plain-HTTP ComfyUI servers.

    What httpcore does for `ComfyClient`, minus its anyio and h11 layers: a request is one socket
    write, the response one header read and one body read. In the worker's profile httpcore was
    the largest cost of a job after the database. Same semantics: no retries; an idle connection
    the server closed is dropped before reuse; failures raise httpx's transport exceptions, which
    the client maps to ComfyUnavailable. Other schemes go to httpx's own transport.
    """

    _MAX_IDLE = 16
    _MAX_HEAD = 64 * 1024

    def __init__(self, *, max_body_bytes: int = 64 * 1024 * 1024) -> None:
        # ComfyUI's largest ordinary answer is /object_info (a few MB on a large install); outputs ask
        # for their own limit per request (MAX_BODY_EXTENSION).
        self.max_body_bytes = max_body_bytes
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._fallback: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        limit = int(request.extensions.get(MAX_BODY_EXTENSION, self.max_body_bytes))
        if url.scheme != "http":
            if self._fallback is None:
                self._fallback = httpx.AsyncHTTPTransport()
            return await _bounded(await self._fallback.handle_async_request(request), limit, request)
        timeouts = request.extensions.get("timeout", {})
        connection = self._checkout()
        if connection is None:
            connection = await self._connect(request, url.host, url.port or 80, timeouts.get("connect"))
        reader, writer = connection
        try:
            head = b"".join(
                [request.method.encode(), b" ", url.raw_path, b" HTTP/1.1\r\n"]
                + [name + b": " + value + b"\r\n" for name, value in request.headers.raw]
                + [b"\r\n"]
            )
            body = await request.aread()
            if "chunked" in request.headers.get("transfer-encoding", "").lower():
                # httpx announces chunked framing for a body of unknown length (a multipart upload
                # of a stream): it is all in memory now, so it goes as one chunk and the last one.
                body = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
            try:
                async with asyncio.timeout(timeouts.get("write")):
                    writer.write(head + body)
                    await writer.drain()
            except TimeoutError as exc:
                raise httpx.WriteTimeout(f"writing to {url.host} timed out", request=request) from exc
            except OSError as exc:
                raise httpx.WriteError(repr(exc), request=request) from exc
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    status, headers, body, reusable = await self._read_response(reader, request.method, limit)
            except TimeoutError as exc:
                raise httpx.ReadTimeout(f"reading from {url.host} timed out", request=request) from exc
            except _TooLarge as exc:
                raise ResponseTooLarge(str(exc), request=request) from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                raise httpx.ReadError(repr(exc), request=request) from exc
            except ValueError as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except BaseException:
            writer.close()
            raise
        if reusable and len(self._idle) < self._MAX_IDLE:
            self._idle.append(connection)
        else:
            writer.close()
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(body), extensions={"http_version": b"HTTP/1.1"}
        )

    def _checkout(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        while self._idle:
            reader, writer = self._idle.pop()
            if reader.at_eof() or writer.is_closing():  # closed by the server while idle
                writer.close()
                continue
            return reader, writer
        return None

    @staticmethod
    async def _connect(
        request: httpx.Request, host: str, port: int, connect_s: float | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(connect_s):
                return await asyncio.open_connection(host, port, limit=Http11Transport._MAX_HEAD)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(repr(exc), request=request) from exc

    @staticmethod
    async def _read_response(
        reader: asyncio.StreamReader, method: str, limit: int
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        if not version.startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP/1.x response: {lines[0][:100]!r}")
        status = int(rest[:3])
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = False
        keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError(f"malformed header line {line[:100]!r}")
            value = value.strip()
            headers.append((name, value))
            lowered = name.lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lowered == b"connection":
                keep_alive = b"close" not in value.lower() and (keep_alive or b"keep-alive" in value.lower())
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return status, headers, b"", keep_alive
        if chunked:
            parts = []
            total = 0
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                total += size
                if total > limit:
                    raise _TooLarge(f"response body is larger than the limit of {limit} bytes")
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            return status, headers, b"".join(parts), keep_alive
        if length is not None:
            if length > limit:
                raise _TooLarge(f"response body of {length} bytes is larger than the limit of {limit} bytes")
            return status, headers, await reader.readexactly(length), keep_alive
        parts = []  # delimited by the server closing
        total = 0
        while chunk := await reader.read(65536):
            total += len(chunk)
            if total > limit:
                raise _TooLarge(f"response body is larger than the limit of {limit} bytes")
            parts.append(chunk)
        return status, headers, b"".join(parts), False

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
        if self._fallback is not None:
            await self._fallback.aclose()


class _TooLarge(Exception):
    """Raised while reading; becomes ResponseTooLarge with its request."""


async def _bounded(response: httpx.Response, limit: int, request: httpx.Request) -> httpx.Response:
    """httpx's own transport's (streamed) response, read up to `limit` bytes of body."""
    parts = []
    total = 0
    try:
        async for chunk in response.aiter_raw():
            total += len(chunk)
            if total > limit:
                raise ResponseTooLarge(f"response body is larger than the limit of {limit} bytes", request=request)
            parts.append(chunk)
    finally:
        await response.aclose()
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=httpx.ByteStream(b"".join(parts)),
        extensions=response.extensions,
    )
