"""A small ASGI server for the fake: HTTP/1.1 and websockets on asyncio, with httptools parsing requests.

An instant prompt costs the fake one or two HTTP requests and ~50 websocket frames. Serving a trivial app on
this machine, uvicorn took 150-200 µs of CPU per keep-alive request and this server ~110 µs (a bare asyncio
protocol, no ASGI, ~50 µs); uvicorn's websocket layer took several µs per frame, this server writes one in
under a microsecond. It also writes a response in one piece: uvicorn, serving in the tests' event loop,
answered most keep-alive requests ~40 ms late (the fake's tests went from 24 s to 8 s).

It does what the fake's app and its clients need and nothing more: keep-alive and pipelined requests,
`Expect: 100-continue`, `Content-Length` or chunked bodies both ways, HEAD; websockets without extensions,
whose frames the app sends are written straight to the socket (the `websockets` sans-I/O protocol parses
what clients send and runs pings and the closing handshake); the ASGI lifespan; a graceful stop.

    async with serving(app, port=0) as (host, port): ...      # in the current event loop
    run(app, host=..., port=...)                              # a process of its own (uvloop), until a signal
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import http
import logging
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import unquote

import httptools
import uvloop
from starlette.types import ASGIApp, Message, Scope
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

logger = logging.getLogger(__name__)

_ASGI = {"version": "3.0", "spec_version": "2.4"}
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_PIPELINED = 16
"""Requests parsed ahead of the one being answered before the connection stops reading."""
_WS_MAX_SIZE = 16 * 1024 * 1024
"""Largest websocket message a client may send (uvicorn's default)."""
_MAX_BODY = 128 * 1024 * 1024
"""Largest request body read into memory; the connection answers 413 and closes beyond it (the routes
enforce their own, smaller limits: this one only bounds what a request can cost before a route sees it)."""
"""Largest websocket message a client may send (uvicorn's default)."""
_CLOSE_TIMEOUT_S = 5.0
_SHUTDOWN_TIMEOUT_S = 5.0


class ClientDisconnectedError(OSError):
    """The app sent to a connection that is gone (or a websocket that is closing)."""


class _Server:
    """What the connections of one listening socket share."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.connections: set[_Connection] = set()
        self.address: tuple[str, int] | None = None
        self._date_second = -1
        self._date = b""

    def date_header(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = b"date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._date


_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode()
    return line


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "scope")

    def __init__(self, scope: Scope, method: str, body: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool):
        self.scope = scope
        self.method = method
        self.body = body
        self.headers = headers
        self.keep_alive = keep_alive


class _Connection(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._client: tuple[str, int] | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._upgrade: _Request | None = None
        self._requests: deque[_Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._reading = True
        self.closed = False
        self.lost = self._loop.create_future()
        self.writable = asyncio.Event()
        self.writable.set()
        self.websocket: _WebSocket | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        peer = transport.get_extra_info("peername")
        self._client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._server.connections.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)
        self.writable.set()
        if self.websocket is not None:
            self.websocket.connection_lost()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        if self.websocket is not None:
            self.websocket.data_received(data)
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._start_websocket(data[upgrade.args[0] :])
        except httptools.HttpParserError:
            self.write(_status_line(400) + b"content-length: 11\r\nconnection: close\r\n\r\nBad Request")
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if (b"expect", b"100-continue") in ((name, value.lower()) for name, value in self._headers):
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._body_size < 0:
            return
        self._body_size += len(body)
        if self._body_size > _MAX_BODY:
            self._body_size, self._body = -1, []
            self.write(_status_line(413) + b"content-length: 0\r\nconnection: close\r\n\r\n")
            self.close()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._body_size < 0:
            return  # answered 413
        parser = self._parser
        method = parser.get_method().decode("ascii")
        url = httptools.parse_url(self._url)
        raw_path = url.path
        scope: Scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": parser.get_http_version(),
            "server": self._server.address,
            "client": self._client,
            "scheme": "http",
            "method": method,
            "root_path": "",
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": self._headers,
            "state": self._server.state.copy(),
        }
        request = _Request(scope, method, b"".join(self._body), self._headers, parser.should_keep_alive())
        if parser.should_upgrade():
            # Only websockets are served; any other upgrade is refused when the parser stops at it.
            websocket = _header(self._headers, b"upgrade").lower() == b"websocket"
            self._upgrade = request if websocket else None
            return
        self._requests.append(request)
        if self._task is None:
            self._next()
        elif len(self._requests) >= _MAX_PIPELINED and self._reading and self.transport is not None:
            self._reading = False
            self.transport.pause_reading()

    # HTTP
    def _next(self) -> None:
        request = self._requests.popleft()
        self._task = self._loop.create_task(self._serve(request))
        if not self._reading and len(self._requests) < _MAX_PIPELINED and self.transport is not None:
            self._reading = True
            self.transport.resume_reading()

    async def _serve(self, request: _Request) -> None:
        cycle = _HttpCycle(self, request)
        try:
            await cycle.run()
        finally:
            self._task = None
        if not request.keep_alive or not cycle.complete:
            self.close()
        elif self._requests and not self.closed:
            self._next()

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def shutdown(self) -> None:
        """Stop: a websocket gets a close frame (1012, restarting); idle HTTP connections close now."""
        if self.websocket is not None:
            self.websocket.shutdown()
        elif self._task is None:
            self.close()
        else:
            self._requests.clear()

    async def wait_idle(self) -> None:
        for task in (self._task, self.websocket.task if self.websocket is not None else None):
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task

    # websocket
    def _start_websocket(self, rest: bytes) -> None:
        request = self._upgrade
        self._upgrade = None
        if request is None:
            self.write(_status_line(400) + b"content-length: 0\r\nconnection: close\r\n\r\n")
            self.close()
            return
        self.websocket = _WebSocket(self, request, rest)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    for key, value in headers:
        if key == name:
            return value
    return b""


class _HttpCycle:
    """One request and its response."""

    def __init__(self, connection: _Connection, request: _Request) -> None:
        self._connection = connection
        self._request = request
        self._body_taken = False
        self._status = 0
        self._head: list[bytes] = []
        self._chunked = False
        self._started = False
        self.complete = False

    async def run(self) -> None:
        try:
            await self._connection._server.app(self._request.scope, self._receive, self._send)
        except Exception:
            logger.exception("fake ComfyUI: exception in ASGI application")
            if not self._started:
                self._connection.write(_status_line(500) + b"content-length: 21\r\n\r\nInternal Server Error")
                self.complete = True
            return
        if not self.complete:
            if self._started:
                logger.error("fake ComfyUI: the ASGI application returned before its response was complete")
            else:
                self._connection.write(_status_line(500) + b"content-length: 21\r\n\r\nInternal Server Error")
                self.complete = True

    async def _receive(self) -> Message:
        if not self._body_taken:
            self._body_taken = True
            return {"type": "http.request", "body": self._request.body, "more_body": False}
        await self._connection.lost
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        connection = self._connection
        kind = message["type"]
        if kind == "http.response.start" and self._status == 0:
            self._status = int(message["status"])
            self._head = [b"%s: %s\r\n" % (name, value) for name, value in message.get("headers", ())]
            return
        if kind != "http.response.body" or self._status == 0 or self.complete:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if connection.closed:
            raise ClientDisconnectedError
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        out: list[bytes] = []
        if not self._started:
            self._started = True
            head = self._head
            has_length = any(line[:15].lower() == b"content-length:" for line in head)
            if not has_length:
                if more:
                    self._chunked = True
                    head.append(b"transfer-encoding: chunked\r\n")
                else:
                    head.append(b"content-length: %d\r\n" % len(body))
            if not self._request.keep_alive:
                head.append(b"connection: close\r\n")
            out = [_status_line(self._status), connection._server.date_header(), *head, b"\r\n"]
        if self._request.method != "HEAD":
            if self._chunked:
                if body:
                    out += [b"%x\r\n" % len(body), body, b"\r\n"]
                if not more:
                    out.append(b"0\r\n\r\n")
            elif body:
                out.append(body)
        if out:
            connection.write(b"".join(out))
        if not more:
            self.complete = True
        if not connection.writable.is_set():
            await connection.writable.wait()


def _frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, unfragmented websocket frame (servers do not mask)."""
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, length) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, length) + payload


class _WebSocket:
    """One websocket: the ASGI app's side of it, and the frames on the wire."""

    def __init__(self, connection: _Connection, request: _Request, rest: bytes) -> None:
        self._connection = connection
        self._request = request
        self._early = bytearray(rest)
        self._protocol: Protocol | None = None
        self._incoming: deque[Message] = deque([{"type": "websocket.connect"}])
        self._arrived: asyncio.Future[None] | None = None
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None
        self._closing = False
        self._gone = False
        self._close_timer: asyncio.TimerHandle | None = None
        headers = request.headers
        protocols = _header(headers, b"sec-websocket-protocol").decode("latin-1")
        scope = dict(request.scope)
        scope.update(
            type="websocket",
            scheme="ws",
            subprotocols=[name.strip() for name in protocols.split(",") if name.strip()],
        )
        del scope["method"]
        self._key = _header(headers, b"sec-websocket-key")
        self.task = asyncio.get_running_loop().create_task(self._run(scope))

    async def _run(self, scope: Scope) -> None:
        code = 1000
        try:
            await self._connection._server.app(scope, self._receive, self._send)
        except Exception:
            logger.exception("fake ComfyUI: exception in websocket application")
            code = 1011
        if self._protocol is None:
            if not self._closing:
                self._connection.write(_status_line(500) + b"content-length: 0\r\nconnection: close\r\n\r\n")
            self._connection.close()
        elif not self._closing:
            self._close(code, "")

    def _valid_handshake(self) -> bool:
        headers = self._request.headers
        return (
            bool(self._key)
            and _header(headers, b"sec-websocket-version") == b"13"
            and b"upgrade" in _header(headers, b"connection").lower()
        )

    async def _receive(self) -> Message:
        while not self._incoming:
            if self._gone:
                return {"type": "websocket.disconnect", "code": 1006}
            self._arrived = asyncio.get_running_loop().create_future()
            try:
                await self._arrived
            finally:
                self._arrived = None
        return self._incoming.popleft()

    def _deliver(self, message: Message) -> None:
        self._incoming.append(message)
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    async def _send(self, message: Message) -> None:
        connection = self._connection
        kind = message["type"]
        if self._protocol is None:
            if kind == "websocket.accept" and self._valid_handshake():
                self._accept(message)
                return
            if kind in ("websocket.accept", "websocket.close"):
                status = 403 if kind == "websocket.close" else 400
                connection.write(_status_line(status) + b"content-length: 0\r\nconnection: close\r\n\r\n")
                connection.close()
                self._closing = True
                self._deliver({"type": "websocket.disconnect", "code": 1006})
                return
            raise RuntimeError(f"unexpected ASGI message {kind!r} before websocket.accept")
        if self._gone or self._closing:
            raise ClientDisconnectedError
        if kind == "websocket.send":
            text = message.get("text")
            if text is not None:
                connection.write(_frame(Opcode.TEXT, text.encode()))
            else:
                connection.write(_frame(Opcode.BINARY, message.get("bytes") or b""))
            if not connection.writable.is_set():
                await connection.writable.wait()
        elif kind == "websocket.close":
            self._close(int(message.get("code", 1000)), message.get("reason") or "")
            self._deliver({"type": "websocket.disconnect", "code": int(message.get("code", 1000))})
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def _accept(self, message: Message) -> None:
        accept = base64.b64encode(hashlib.sha1(self._key + _WS_GUID).digest())
        head = [
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n",
            b"sec-websocket-accept: " + accept + b"\r\n",
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            head.append(b"sec-websocket-protocol: " + subprotocol.encode() + b"\r\n")
        head += [b"%s: %s\r\n" % (name, value) for name, value in message.get("headers", ())]
        self._connection.write(b"".join([*head, self._connection._server.date_header(), b"\r\n"]))
        self._protocol = Protocol(Side.SERVER, state=State.OPEN, max_size=_WS_MAX_SIZE)
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self.data_received(early)

    def data_received(self, data: bytes) -> None:
        protocol = self._protocol
        if protocol is None:
            self._early += data  # frames sent before the app accepted: kept for then
            return
        protocol.receive_data(data)
        for frame in protocol.events_received():
            if not isinstance(frame, Frame):
                continue
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                self._fragment_opcode, self._fragments = opcode, [bytes(frame.data)]
            elif opcode is Opcode.CONT and self._fragment_opcode is not None:
                self._fragments.append(bytes(frame.data))
            else:
                continue  # ping, pong and close are the protocol's business
            if frame.fin and self._fragment_opcode is not None:
                data_ = b"".join(self._fragments)
                if self._fragment_opcode is Opcode.TEXT:
                    self._deliver({"type": "websocket.receive", "text": data_.decode()})
                else:
                    self._deliver({"type": "websocket.receive", "bytes": data_})
                self._fragment_opcode, self._fragments = None, []
        self._flush()
        if protocol.state in (State.CLOSING, State.CLOSED) and not self._closing:
            self._closing = True
            code = protocol.close_rcvd.code if protocol.close_rcvd is not None else 1005
            self._deliver({"type": "websocket.disconnect", "code": code})

    def _flush(self) -> None:
        assert self._protocol is not None
        for chunk in self._protocol.data_to_send():
            if chunk:
                self._connection.write(chunk)
            else:
                self._connection.close()

    def _close(self, code: int, reason: str) -> None:
        self._closing = True
        protocol = self._protocol
        if protocol is None or protocol.state is not State.OPEN:
            self._connection.close()
            return
        protocol.send_close(code, reason)
        self._flush()
        self._close_timer = asyncio.get_running_loop().call_later(_CLOSE_TIMEOUT_S, self._connection.close)

    def shutdown(self) -> None:
        if self._protocol is None:
            self._connection.close()
        elif not self._closing:
            self._close(1012, "")
            self._deliver({"type": "websocket.disconnect", "code": 1012})

    def connection_lost(self) -> None:
        self._gone = True
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self._closing:
            self._closing = True
            self._deliver({"type": "websocket.disconnect", "code": 1006})
        elif self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)


class _Lifespan:
    """The ASGI lifespan protocol: startup before the socket listens, shutdown after it stops."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self._app = app
        self._state = state
        self._events: asyncio.Queue[Message] = asyncio.Queue()
        self._started = asyncio.get_running_loop().create_future()
        self._stopped = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        failed = kind.endswith(".failed")
        target = self._started if kind.startswith("lifespan.startup") else self._stopped
        if not target.done():
            if failed:
                target.set_exception(RuntimeError(message.get("message") or kind))
            else:
                target.set_result(None)

    async def _run(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": _ASGI, "state": self._state}
        try:
            await self._app(scope, self._events.get, self._send)
        except BaseException as ex:
            for waiter in (self._started, self._stopped):
                if not waiter.done():
                    waiter.set_exception(ex if isinstance(ex, Exception) else RuntimeError("lifespan cancelled"))
            if not isinstance(ex, Exception):
                raise

    async def startup(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._events.put({"type": "lifespan.startup"})
        await self._started

    async def shutdown(self) -> None:
        await self._events.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(asyncio.shield(self._stopped), _SHUTDOWN_TIMEOUT_S)
        finally:
            if self._task is not None and not self._task.done():
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task


@asynccontextmanager
async def serving(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None
) -> AsyncIterator[tuple[str, int]]:
    """Serve `app` in the running loop until the block ends; yields the bound (host, port)."""
    loop = asyncio.get_running_loop()
    state: dict[str, Any] = {}
    lifespan = _Lifespan(app, state)
    await lifespan.startup()
    server = _Server(app, state)
    try:
        if sock is None:
            listener = await loop.create_server(lambda: _Connection(server), host, port, reuse_address=True)
        else:
            listener = await loop.create_server(lambda: _Connection(server), sock=sock)
    except BaseException:
        await lifespan.shutdown()
        raise
    bound = listener.sockets[0].getsockname()
    server.address = (str(bound[0]), int(bound[1]))
    try:
        yield server.address
    finally:
        listener.close()
        connections = list(server.connections)
        for connection in connections:
            connection.shutdown()
        if connections:
            waiting = asyncio.gather(*(connection.wait_idle() for connection in connections))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting, _SHUTDOWN_TIMEOUT_S)
        for connection in list(server.connections):
            connection.close()
        await lifespan.shutdown()
        await listener.wait_closed()


def run(app: ASGIApp, *, host: str, port: int) -> None:
    """Serve `app` on uvloop until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with serving(app, host=host, port=port) as (bound_host, bound_port):
            logger.info("fake ComfyUI listening on http://%s:%d", bound_host, bound_port)
            await stop.wait()

    uvloop.run(main())
