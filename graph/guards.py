"""What every request passes before it reaches a handler: body size, Host (dev mode), Origin (websockets),
connection caps, and the security headers on every answer.

ASGI middleware on public Starlette/ASGI interfaces only. Each refusal is early and cheap: a body over
the limit is refused from its Content-Length, or as soon as the bytes received pass it, before the
JSON decoder sees any of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "LOOPBACK_HOSTS",
    "BodyLimit",
    "ConnectionCaps",
    "DevHostGuard",
    "SecurityHeaders",
    "allowed_origin",
    "host_name",
]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

# The app and the playground load everything from this server; nothing may frame them.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self' ws: wss:; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode()),
]


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *_HEADERS]})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """nosniff, CSP with frame-ancestors, Referrer-Policy and X-Frame-Options on every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in _HEADERS if name not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413: by Content-Length at once, or while streaming.

    `exempt`: paths whose handler reads its body under a limit of its own (uploads).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        message = f"the request body is over the limit of {self.max_bytes:,} bytes (SAFELIGHT_MAX_BODY_BYTES)"
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _plain(send, 413, message)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return incoming

        async def watched(outgoing: Message) -> None:
            nonlocal started
            started = started or outgoing["type"] == "http.response.start"
            await send(outgoing)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            await _plain(send, 413, message)


def host_name(value: str) -> str:
    """The host of a Host header or URL netloc, lowercased, without port (IPv6 keeps its brackets)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value.partition("]")[0] + "]"
    return value.rpartition(":")[0] if value.count(":") == 1 else value


class DevHostGuard:
    """Dev mode: every request must name this machine in Host (a loopback name or a configured host).

    A page on an attacker's domain that resolves to 127.0.0.1 (DNS rebinding) sends its own domain
    in Host; without this it could read /dev/token and act as the dev admin.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = LOOPBACK_HOSTS | {host_name(h) for h in allowed_hosts if h}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = host_name(Headers(scope=scope).get("host", ""))
            if host not in self.allowed:
                if scope["type"] == "http":
                    await _plain(send, 421, "dev mode answers only requests for this machine (Host header)")
                else:
                    await send({"type": "websocket.close", "code": 1008, "reason": "host not allowed"})
                return
        await self.app(scope, receive, send)


def allowed_origin(origin: str | None, *, host: str | None, allowed: Iterable[str]) -> bool:
    """A websocket's Origin: absent (not a browser), the server's own origin, or one of `allowed`."""
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if origin in {a.lower().rstrip("/") for a in allowed}:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == (host or "").strip().lower()


@dataclass
class ConnectionCaps:
    """Websocket connections of one process: total, not yet authenticated, and per client address.

    Unauthenticated sockets get a smaller share (`max_unauthenticated`, and per address), so sockets
    that never authenticate cannot use up the room authenticated clients need.
    """

    max_total: int
    max_unauthenticated: int
    max_per_client: int
    max_unauthenticated_per_client: int
    total: int = 0
    unauthenticated: int = 0
    _per_client: Counter[str] = field(default_factory=Counter)
    _unauth_per_client: Counter[str] = field(default_factory=Counter)

    def admit(self, client: str) -> str | None:
        """Count a new (unauthenticated) connection; the reason it is refused, or None."""
        if self.total >= self.max_total:
            return "too many connections"
        if self.unauthenticated >= self.max_unauthenticated:
            return "too many unauthenticated connections"
        if self._per_client[client] >= self.max_per_client:
            return "too many connections from this address"
        if self._unauth_per_client[client] >= self.max_unauthenticated_per_client:
            return "too many unauthenticated connections from this address"
        self.total += 1
        self.unauthenticated += 1
        self._per_client[client] += 1
        self._unauth_per_client[client] += 1
        return None

    def authenticated(self, client: str) -> None:
        self.unauthenticated -= 1
        self._drop(self._unauth_per_client, client)

    def release(self, client: str, *, authenticated: bool) -> None:
        self.total -= 1
        self._drop(self._per_client, client)
        if not authenticated:
            self.unauthenticated -= 1
            self._drop(self._unauth_per_client, client)

    @staticmethod
    def _drop(counter: Counter[str], client: str) -> None:
        counter[client] -= 1
        if counter[client] <= 0:
            del counter[client]
