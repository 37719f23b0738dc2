"""Open websockets by client id, and the fan-out of messages to one client or to all.

Each connection owns an outbound queue drained by its own sender task, so the executor never waits on a
slow socket and per-socket message order is the order of `send` calls.

The messages every prompt sends (`status`, `execution_start`, `execution_cached`, `progress_state`,
`executing`, `progress`, `execution_success`) are written by the functions below rather than by
`json.dumps`: the same text, byte for byte (tests/fake/test_hub.py checks them against `json.dumps`), at a
fraction of the cost.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

_PREVIEW_IMAGE = 1
_PREVIEW_IMAGE_WITH_METADATA = 4
_JPEG = 1

Frame = str | bytes | None
"""Text frame, binary frame, or None: close the socket."""


def text_message(kind: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "data": data})


def json_string(value: str) -> str:
    """`json.dumps(value)` for a str (the same C function json.dumps uses)."""
    return encode_basestring_ascii(value)


def json_number(value: float) -> str:
    """`json.dumps(value)` for an int or a float."""
    kind = type(value)
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)
    return json.dumps(value)


def status_message(queue_remaining: int) -> str:
    """`text_message("status", {"status": {"exec_info": {"queue_remaining": n}}})`."""
    remaining = json_number(queue_remaining)
    return f'{{"type": "status", "data": {{"status": {{"exec_info": {{"queue_remaining": {remaining}}}}}}}}}'


def executing_message(node: str, prompt: str) -> str:
    """`text_message("executing", {"node": n, "display_node": n, "prompt_id": p})`; `node` and `prompt`
    are JSON strings (`json_string`)."""
    return f'{{"type": "executing", "data": {{"node": {node}, "display_node": {node}, "prompt_id": {prompt}}}}}'


def prompt_event_message(kind: str, prompt: str, timestamp: int) -> str:
    """`text_message(kind, {"prompt_id": p, "timestamp": t})`: execution_start, execution_success."""
    return f'{{"type": {json_string(kind)}, "data": {{"prompt_id": {prompt}, "timestamp": {json_number(timestamp)}}}}}'


def execution_cached_message(nodes: Iterable[str], prompt: str, timestamp: int) -> str:
    """`text_message("execution_cached", {"nodes": [...], "prompt_id": p, "timestamp": t})`."""
    listed = ", ".join(json_string(node) for node in nodes)
    return (
        f'{{"type": "execution_cached", "data": {{"nodes": [{listed}], "prompt_id": {prompt}, '
        f'"timestamp": {json_number(timestamp)}}}}}'
    )


def executing_done_message(prompt: str) -> str:
    """`text_message("executing", {"node": None, "prompt_id": p})`: the end marker of a prompt."""
    return f'{{"type": "executing", "data": {{"node": null, "prompt_id": {prompt}}}}}'


def progress_message(value: float, total: float, node: str, prompt: str, stamp: float | None) -> str:
    """`text_message("progress", {"value", "max", "prompt_id", "node"[, "safelight_ts": stamp]})`; `node`
    and `prompt` are JSON strings."""
    head = (
        f'{{"type": "progress", "data": {{"value": {json_number(value)}, "max": {json_number(total)}, '
        f'"prompt_id": {prompt}, "node": {node}'
    )
    if stamp is None:
        return head + "}}"
    return f'{head}, "safelight_ts": {json_number(stamp)}}}}}'


def node_state_entry(node: str, prompt: str, state: str, value: float, total: float) -> str:
    """One `"node_id": {...}` member of `progress_state.data.nodes`; `node` and `prompt` are JSON strings."""
    return (
        f'{node}: {{"value": {json_number(value)}, "max": {json_number(total)}, "state": {json_string(state)}, '
        f'"node_id": {node}, "prompt_id": {prompt}, "display_node_id": {node}, "parent_node_id": null, '
        f'"real_node_id": {node}}}'
    )


def progress_state_message(prompt: str, entries: Iterable[str]) -> str:
    """`text_message("progress_state", {"prompt_id": p, "nodes": {...}})` from `node_state_entry`s."""
    return f'{{"type": "progress_state", "data": {{"prompt_id": {prompt}, "nodes": {{{", ".join(entries)}}}}}}}'


def legacy_preview_frame(jpeg: bytes) -> bytes:
    """Upstream's type-1 frame: event type 1, image format 1 (JPEG), the image."""
    return struct.pack(">II", _PREVIEW_IMAGE, _JPEG) + jpeg


def metadata_preview_frame(jpeg: bytes, metadata: dict[str, Any]) -> bytes:
    """Type-4 frame: event type 4, metadata length, metadata JSON, the image."""
    encoded = json.dumps(metadata).encode()
    return struct.pack(">II", _PREVIEW_IMAGE_WITH_METADATA, len(encoded)) + encoded + jpeg


@dataclass(eq=False)
class Connection:
    sid: str
    supports_preview_metadata: bool = False
    _frames: deque[Frame] = field(default_factory=deque, init=False)
    _waiter: asyncio.Future[None] | None = field(default=None, init=False)

    def put(self, frame: Frame) -> None:
        self._frames.append(frame)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get_all(self) -> list[Frame]:
        """Every frame not yet taken, oldest first, waiting for one if there is none."""
        while not self._frames:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frames = list(self._frames)
        self._frames.clear()
        return frames


class Hub:
    def __init__(self) -> None:
        self.sockets: dict[str, Connection] = {}

    def add(self, connection: Connection) -> None:
        """A reconnect with the same client id replaces the older socket, as in ComfyUI: the older one stays
        open but gets nothing more."""
        self.sockets[connection.sid] = connection

    def remove(self, connection: Connection, *, by_client_id: bool = False) -> None:
        """Forget a closed socket. With `by_client_id` (upstream's server.py: `sockets.pop(sid)` when any
        socket of that client id closes) the socket now registered under its client id goes too, even when
        it is a newer one that replaced it."""
        if by_client_id or self.sockets.get(connection.sid) is connection:
            self.sockets.pop(connection.sid, None)

    def _targets(self, sid: str | None) -> list[Connection]:
        if sid is None:
            return list(self.sockets.values())
        connection = self.sockets.get(sid)
        return [] if connection is None else [connection]

    def listening(self, sid: str | None = None) -> bool:
        """Whether `send(..., sid)` would reach any socket (so a caller can skip encoding)."""
        return bool(self.sockets) if sid is None else sid in self.sockets

    def send(self, kind: str, data: dict[str, Any], sid: str | None = None) -> None:
        """To the socket of client `sid`, or to every socket when `sid` is None; encoded only if one listens."""
        if self.listening(sid):
            self.send_text(text_message(kind, data), sid)

    def send_text(self, message: str, sid: str | None = None) -> None:
        """An already encoded text message, to `sid` or to every socket."""
        if sid is None:
            for connection in self.sockets.values():
                connection.put(message)
            return
        target = self.sockets.get(sid)
        if target is not None:
            target.put(message)

    def wants_preview(self, sid: str | None, *, legacy: bool) -> bool:
        """Whether a preview for `sid` (every socket when None) would reach anyone: any target that
        announced `supports_preview_metadata`, or (with `legacy`) any that did not."""
        return any(c.supports_preview_metadata or legacy for c in self._targets(sid))

    def send_metadata_preview(self, jpeg: bytes, metadata: dict[str, Any], sid: str | None = None) -> None:
        """A type-4 frame to the targets that announced `supports_preview_metadata`."""
        frame: bytes | None = None
        for connection in self._targets(sid):
            if connection.supports_preview_metadata:
                frame = frame or metadata_preview_frame(jpeg, metadata)
                connection.put(frame)

    def send_legacy_preview(self, jpeg: bytes, sid: str | None = None, *, flagged_too: bool = False) -> None:
        """A type-1 frame to the targets that did not announce `supports_preview_metadata` (to every target
        with `flagged_too`: upstream's previews of a prompt without client_id)."""
        frame: bytes | None = None
        for connection in self._targets(sid):
            if flagged_too or not connection.supports_preview_metadata:
                frame = frame or legacy_preview_frame(jpeg)
                connection.put(frame)

    def close_all(self) -> None:
        for connection in list(self.sockets.values()):
            connection.put(None)
        self.sockets.clear()
