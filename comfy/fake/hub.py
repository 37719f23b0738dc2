"""Open websockets by client id, and the fan-out of messages to one client or to all.

Each connection owns an outbound queue drained by its own sender task, so the executor never waits on a
slow socket and per-socket message order is the order of `send` calls.
"""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass, field
from typing import Any

_PREVIEW_IMAGE = 1
_PREVIEW_IMAGE_WITH_METADATA = 4
_JPEG = 1

Frame = str | bytes | None
"""Text frame, binary frame, or None: close the socket."""


def text_message(kind: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "data": data})


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
    outbox: asyncio.Queue[Frame] = field(default_factory=asyncio.Queue)

    def put(self, frame: Frame) -> None:
        self.outbox.put_nowait(frame)


class Hub:
    def __init__(self) -> None:
        self.sockets: dict[str, Connection] = {}

    def add(self, connection: Connection) -> None:
        """A reconnect with the same client id replaces the older socket, as in ComfyUI."""
        self.sockets[connection.sid] = connection

    def remove(self, connection: Connection) -> None:
        if self.sockets.get(connection.sid) is connection:
            del self.sockets[connection.sid]

    def _targets(self, sid: str | None) -> list[Connection]:
        if sid is None:
            return list(self.sockets.values())
        connection = self.sockets.get(sid)
        return [] if connection is None else [connection]

    def send(self, kind: str, data: dict[str, Any], sid: str | None = None) -> None:
        """To the socket of client `sid`, or to every socket when `sid` is None."""
        targets = self._targets(sid)
        if targets:
            message = text_message(kind, data)
            for connection in targets:
                connection.put(message)

    def send_preview(self, jpeg: bytes, metadata: dict[str, Any], sid: str | None = None) -> None:
        legacy: bytes | None = None
        with_metadata: bytes | None = None
        for connection in self._targets(sid):
            if connection.supports_preview_metadata:
                with_metadata = with_metadata or metadata_preview_frame(jpeg, metadata)
                connection.put(with_metadata)
            else:
                legacy = legacy or legacy_preview_frame(jpeg)
                connection.put(legacy)

    def close_all(self) -> None:
        for connection in list(self.sockets.values()):
            connection.put(None)
        self.sockets.clear()
