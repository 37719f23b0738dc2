"""A websocket client that records every frame, so tests can wait for one and compare sequences."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

WAIT_S = 10.0

Frame = dict[str, Any]
"""Text frames as sent (`{"type", "data"}`); binary ones as `{"type": "binary:N", "data": metadata, ...}`."""


def frame_of(message: str | bytes) -> Frame:
    if isinstance(message, str):
        decoded: Frame = json.loads(message)
        return decoded
    (event_type,) = struct.unpack(">I", message[:4])
    if event_type == 4:
        (length,) = struct.unpack(">I", message[4:8])
        metadata = json.loads(message[8 : 8 + length])
        return {"type": "binary:4", "data": metadata, "image": message[8 + length :]}
    (image_format,) = struct.unpack(">I", message[4:8])
    return {"type": f"binary:{event_type}", "data": None, "format": image_format, "image": message[8:]}


class Socket:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[Frame] = []
        self.closed = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.connection:
                async with self._arrived:
                    self.frames.append(frame_of(message))
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            async with self._arrived:
                self._arrived.notify_all()

    async def send(self, data: Any) -> None:
        await self.connection.send(json.dumps(data))

    async def wait_for(self, predicate: Callable[[Frame], bool]) -> Frame:
        async def scan() -> Frame:
            seen = 0
            async with self._arrived:
                while True:
                    for frame in self.frames[seen:]:
                        if predicate(frame):
                            return frame
                    seen = len(self.frames)
                    if self.closed.is_set():
                        raise AssertionError(f"socket closed before the frame arrived; got {self.types()}")
                    await self._arrived.wait()

        return await asyncio.wait_for(scan(), WAIT_S)

    async def wait_type(self, kind: str, **data: Any) -> Frame:
        return await self.wait_for(
            lambda f: f["type"] == kind and all((f.get("data") or {}).get(k) == v for k, v in data.items()),
        )

    async def wait_count(self, count: int, kind: str | None = None) -> Frame:
        """The `count`-th frame (of type `kind`, when given) to arrive."""
        seen = 0

        def counted(frame: Frame) -> bool:
            nonlocal seen
            if kind is None or frame["type"] == kind:
                seen += 1
            return seen >= count

        return await self.wait_for(counted)

    async def wait_done(self, prompt_id: str) -> Frame:
        """The end marker older clients rely on: `executing` with node null for this prompt."""
        return await self.wait_type("executing", node=None, prompt_id=prompt_id)

    def types(self) -> list[str]:
        return [frame["type"] for frame in self.frames]

    async def close(self) -> None:
        await self.connection.close()
        await self._reader


@asynccontextmanager
async def open_socket(url: str, client_id: str | None, *, feature_flags: bool = False) -> AsyncIterator[Socket]:
    target = f"{url.replace('http', 'ws', 1)}/ws" + (f"?clientId={client_id}" if client_id else "")
    async with connect(target, max_size=None) as connection:
        socket = Socket(connection)
        if feature_flags:
            await socket.send({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        try:
            await socket.wait_type("status")
            if feature_flags:
                await socket.wait_type("feature_flags")
            yield socket
        finally:
            await socket.close()
