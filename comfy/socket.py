"""One websocket per ComfyUI backend, shared by every job on it.

`ComfySocket` keeps a connection to `/ws?clientId=...` open for as long as it
runs, reconnecting forever with exponential backoff and full jitter. Each job
calls `subscribe(prompt_id)` and iterates the events of its own prompt.

Demultiplexing: events are routed by `prompt_id`. Messages that carry none
(type-1 preview frames) go to the prompt this socket last saw start or execute
a node on this connection.

Reconnecting: ComfyUI sends execution messages only to the socket of the
client id that submitted the prompt, and keeps one socket per client id. A
socket that connects with that client id while the prompt runs first gets
`executing {node}` without a prompt id (upstream recordings 09 and 13), then
every later message. Which prompt that node belongs to is not said, and this
socket does not guess: after a (re)connect it holds the node until a consumer
that asked `/queue` says which of its prompts runs (`mark_running`), unless a
message naming the prompt came first. A socket opened to follow one prompt
(`follows=`: a job that took over a prompt submitted under another worker's
client id) attributes it to that prompt at once.

Gaps: the moment a connection closes, every subscription receives
`Disconnected()`; whenever a connection opens, every subscription that exists
at that moment receives `Reconnected()` first (it lived through a time without
a socket, so events may be missing). The consumer must then ask `/history` and
`/queue` what happened; the socket never guesses.

Backoff: the n-th consecutive failed attempt waits a uniformly random time
in [0, min(backoff_max, backoff_initial * 2**n)]; a connection that stayed up
for over a second resets n, one that is dropped at once does not.

Previews are latest-wins per subscription: a consumer that falls behind gets
the newest preview, not a backlog of stale images. Every other event is kept.

The receive loop is on the relay's hot path: one `json.loads` per message, a
dict lookup to the parser, a dict lookup to the subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from comfy.client import without_credentials
from comfy.errors import ComfyError, ComfyUnreachable
from comfy.events import (
    ComfyEvent,
    Disconnected,
    ExecutionStarted,
    Finished,
    NodeExecuting,
    Preview,
    Progress,
    QueueStatus,
    Reconnected,
    parse_binary,
    parse_message,
)

__all__ = ["ComfySocket", "PromptEvents"]

log = logging.getLogger(__name__)

_PREVIEW: Final = object()  # "the latest preview is waiting in the slot"
_END: Final = object()  # the subscription was closed by its owner
_SOCKET_CLOSED: Final = object()  # the socket was closed under the subscription

Listener = Callable[[ComfyEvent], None]


class PromptEvents:
    """The events of one prompt, as an async iterator. Close it (or use `async with`) when done."""

    __slots__ = ("_preview", "_queue", "_socket", "closed", "prompt_id")

    def __init__(self, socket: ComfySocket, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self._socket = socket
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._preview: Preview | None = None
        self.closed = False

    def _push(self, event: ComfyEvent) -> None:
        self._queue.put_nowait(event)

    def _push_preview(self, preview: Preview) -> None:
        if self._preview is None:
            self._queue.put_nowait(_PREVIEW)
        self._preview = preview

    def _end(self, marker: object) -> None:
        self._queue.put_nowait(marker)

    def __aiter__(self) -> PromptEvents:
        return self

    async def __anext__(self) -> ComfyEvent:
        item = await self._queue.get()
        if item is _PREVIEW:
            preview = self._preview
            self._preview = None
            if preview is not None:
                return preview
            return await self.__anext__()
        if item is _END:
            self._queue.put_nowait(_END)
            raise StopAsyncIteration
        if item is _SOCKET_CLOSED:
            self._queue.put_nowait(_SOCKET_CLOSED)
            raise ComfyUnreachable("the ComfyUI websocket was closed", why="websocket closed")
        event: ComfyEvent = item
        return event

    def pending(self) -> int:
        """Events waiting to be read."""
        return self._queue.qsize()

    def close(self) -> None:
        """Unsubscribe; iteration ends once the events already queued are read."""
        if not self.closed:
            self.closed = True
            self._socket._unsubscribe(self)
            self._end(_END)

    async def __aenter__(self) -> PromptEvents:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ComfySocket:
    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        feature_flags: bool = True,
        open_timeout: float = 10.0,
        follows: str | None = None,
        on_connection: Callable[[bool], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.follows = follows  # the one prompt a socket opened for it follows (see the module doc)
        self.on_connection = on_connection  # called with True when a connection opens, False when it closes
        self.url = _ws_url(self.base_url, client_id)
        self.display_url = without_credentials(self.url)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.feature_flags = feature_flags
        self.open_timeout = open_timeout
        self.connected = asyncio.Event()
        self.connections = 0  # connections opened so far
        self.queue_remaining: int | None = None
        self.current_prompt: str | None = follows
        self._unclaimed_node: str | None = None  # `executing {node}` without prompt id, not yet placed
        self._subs: dict[str, list[PromptEvents]] = {}
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._closing = False
        self._retry_now: asyncio.Event | None = None  # set by `retry_now` during a backoff pause

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"comfy-socket {self.base_url}")

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected.clear()
        for subs in list(self._subs.values()):
            for sub in subs:
                sub.closed = True
                sub._end(_SOCKET_CLOSED)
        self._subs.clear()

    async def __aenter__(self) -> ComfySocket:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # The interface takes a timeout so callers get ComfyUnreachable rather than a bare TimeoutError.
    async def wait_connected(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait for an open connection; ComfyUnreachable after `timeout` seconds."""
        if self.connected.is_set():
            return
        try:
            async with asyncio.timeout(timeout):
                await self.connected.wait()
        except TimeoutError:
            raise ComfyUnreachable(
                f"no websocket to {self.display_url} after {timeout} s", sent=False, why="no websocket"
            ) from None

    async def drop(self) -> None:
        """Close the current connection as if the network failed; the socket reconnects."""
        ws = self._ws
        if ws is not None:
            await ws.close(code=1011, reason="dropped by client")

    # -- subscriptions -----------------------------------------------------------------------

    def subscribe(self, prompt_id: str) -> PromptEvents:
        sub = PromptEvents(self, prompt_id)
        self._subs.setdefault(prompt_id, []).append(sub)
        return sub

    def _unsubscribe(self, sub: PromptEvents) -> None:
        subs = self._subs.get(sub.prompt_id)
        if subs is None:
            return
        with contextlib.suppress(ValueError):
            subs.remove(sub)
        if not subs:
            del self._subs[sub.prompt_id]

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` for every event of every prompt (and QueueStatus); returns the remover."""
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def retry_now(self) -> None:
        """Cut the backoff pause short: the backend answers HTTP again, its websocket should too."""
        if self._retry_now is not None:
            self._retry_now.set()

    def mark_running(self, prompt_id: str) -> None:
        """`prompt_id` is the one running on this backend (its consumer asked `/queue`).

        Pid-less messages go to it from now on; a node that came without a prompt id since the
        last connect, before anything naming a prompt, is delivered to it now.
        """
        self.current_prompt = prompt_id
        node, self._unclaimed_node = self._unclaimed_node, None
        if node is not None:
            self._route(NodeExecuting(prompt_id, node))

    # -- connection loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        opened_at: float | None = None
        while not self._closing:
            try:
                async with connect(
                    self.url,
                    open_timeout=self.open_timeout,
                    max_size=64 * 1024 * 1024,
                    compression=None,
                    proxy=None,
                    close_timeout=2,
                    user_agent_header="safelight",
                ) as ws:
                    if self.feature_flags:
                        await ws.send(_FEATURE_FLAGS)
                    opened_at = loop.time()
                    self._on_open(ws)
                    await self._receive(ws)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, WebSocketException, ComfyError) as exc:
                # Said once per outage; the retries that follow are routine until it answers again.
                level = logging.INFO if attempt == 0 else logging.DEBUG
                log.log(level, "comfy websocket %s: %r", self.display_url, exc)
            except Exception:
                log.exception("comfy websocket %s failed", self.display_url)
            finally:
                was_open = self._ws is not None
                self._ws = None
                self.connected.clear()
            if self._closing:
                break
            if was_open:
                self._on_close()
            if opened_at is not None and loop.time() - opened_at > _STABLE_S:
                attempt = 0  # a connection that held for a while resets the backoff
            opened_at = None
            delay = random.uniform(0, min(self.backoff_max, self.backoff_initial * (2**attempt)))
            attempt = min(attempt + 1, 30)
            self._retry_now = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._retry_now.wait()
            self._retry_now = None

    def _on_open(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.connections += 1
        self.connected.set()
        self.current_prompt = self.follows  # what ran before the gap may have ended (module doc)
        self._unclaimed_node = None
        marker = Reconnected()
        for subs in list(self._subs.values()):
            for sub in subs:
                sub._push(marker)
        self._notify(marker)
        if self.on_connection is not None:
            self.on_connection(True)

    def _on_close(self) -> None:
        marker = Disconnected()
        for subs in list(self._subs.values()):
            for sub in subs:
                sub._push(marker)
        self._notify(marker)
        if self.on_connection is not None:
            self.on_connection(False)

    @property
    def down(self) -> bool:
        """A connection was open and is not now (before the first one, nothing is known)."""
        return self.connections > 0 and not self.connected.is_set()

    async def _receive(self, ws: ClientConnection) -> None:
        on_text = self._on_text
        on_binary = self._on_binary
        async for frame in ws:
            if isinstance(frame, str):
                on_text(frame)
            else:
                on_binary(frame)

    def _on_text(self, raw: str) -> None:
        try:
            message = json.loads(raw)
            event = parse_message(message, self.current_prompt) if type(message) is dict else None
        except (ValueError, ComfyError) as exc:
            log.warning("ignoring a ComfyUI message: %s", exc)
            return
        if event is not None:
            self._route(event)
        elif message.get("type") == "executing":
            self._on_unplaced_executing(message.get("data"))

    def _on_unplaced_executing(self, data: Any) -> None:
        """`executing {node}` without a prompt id and none known to run here: keep it for `mark_running`."""
        if isinstance(data, dict) and data.get("prompt_id") is None and data.get("node") is not None:
            self._unclaimed_node = str(data["node"])

    def _on_binary(self, frame: bytes) -> None:
        try:
            preview = parse_binary(frame, self.current_prompt)
        except ComfyError as exc:
            log.warning("ignoring a ComfyUI binary frame: %s", exc)
            return
        if preview is None:
            return
        if self._listeners:
            self._notify(preview)
        if preview.prompt_id is not None:
            for sub in self._subs.get(preview.prompt_id, ()):
                sub._push_preview(preview)

    def _route(self, event: ComfyEvent) -> None:
        if isinstance(event, QueueStatus):
            self.queue_remaining = event.queue_remaining
            self._notify(event)
            return
        if isinstance(event, Progress | NodeExecuting | ExecutionStarted):
            self.current_prompt = event.prompt_id
            self._unclaimed_node = None  # a message naming the prompt came first: the node is stale
        elif isinstance(event, Finished) and self.current_prompt == event.prompt_id:
            self.current_prompt = None
        if self._listeners:
            self._notify(event)
        prompt_id = getattr(event, "prompt_id", None)
        subs = self._subs.get(prompt_id) if prompt_id is not None else None
        if subs:
            for sub in subs:
                sub._push(event)

    def _notify(self, event: ComfyEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("comfy socket listener failed")


_STABLE_S: Final = 1.0
_FEATURE_FLAGS: Final = json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})


def _ws_url(base_url: str, client_id: str) -> str:
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path, f"clientId={quote(client_id, safe='')}", ""))
