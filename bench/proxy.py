"""A TCP proxy that can be cut: a PostgreSQL or Redis outage for one test's (or soak's) connections only.

`cut()` closes every open connection and stops listening (new connections are refused, as by a
stopped server); `restore()` listens again on the same port. Nothing else sharing the real server
notices, unlike stopping the server itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["CuttableProxy", "cuttable_proxy"]

_CHUNK = 65536
_CONNECT_TIMEOUT_S = 5.0


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.cuts = 0

    @property
    def is_cut(self) -> bool:
        return self._server is None

    def url(self, url: str) -> str:
        """`url` (postgresql://… or redis://…) pointed at this proxy instead of its host and port."""
        scheme, _, rest = url.partition("://")
        authority, slash, path = rest.partition("/")
        userinfo, at, _ = authority.rpartition("@")
        return f"{scheme}://{userinfo}{at}127.0.0.1:{self.port}{slash}{path}"

    async def start(self) -> None:
        if self.port == 0:
            with socket.socket() as probe:  # a fixed port, so a restored proxy is where clients reconnect
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self.cuts += 1
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def restore(self) -> None:
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), _CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)  # type: ignore[arg-type]
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            self._pipes.discard(task)  # type: ignore[arg-type]
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


@asynccontextmanager
async def cuttable_proxy(host: str, port: int) -> AsyncIterator[CuttableProxy]:
    proxy = CuttableProxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
