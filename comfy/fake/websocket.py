"""`GET /ws?clientId=`: ComfyUI's websocket, with the feature-flag handshake of recording 03.

One socket per client id, as in ComfyUI's server.py: a new connection with a known client id replaces the
older one (which stays open and gets nothing more). A client reconnecting while its prompt runs gets
`status`, then `executing {"node": <current>}` without prompt_id, then the prompt's messages from there
on (recordings 09 and 13). Upstream forgets a client id when ANY of its sockets closes (`sockets.pop(sid)`),
so the older socket closing after a reconnect cuts the newer one off too; the upstream dialect does the same.

A plain ASGI app rather than a Starlette `WebSocket` endpoint: every frame of every prompt goes through
`_send_loop`, and Starlette's wrapper added a few state checks and calls to each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

from starlette.datastructures import QueryParams
from starlette.types import Receive, Scope, Send

from comfy.fake.hub import Connection
from comfy.fake.routes import server_features
from comfy.fake.state import FakeComfy


class WebSocketEndpoint:
    """The ASGI app of `/ws` (Starlette's WebSocketRoute runs a non-function endpoint as ASGI)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        fake: FakeComfy = scope["app"].state.fake
        await send({"type": "websocket.accept"})
        sid = QueryParams(scope.get("query_string", b"")).get("clientId") or uuid.uuid4().hex
        connection = Connection(sid)
        fake.hub.add(connection)
        connection.put(json.dumps({"type": "status", "data": {**fake.status_data(), "sid": sid}}))
        node = fake.executor.reconnect_node(sid)
        if node is not None:
            connection.put(json.dumps({"type": "executing", "data": {"node": node}}))
        sender = asyncio.create_task(_send_loop(send, connection))
        receiver = asyncio.create_task(_receive_loop(receive, connection, fake))
        try:
            await asyncio.wait([sender, receiver], return_when=asyncio.FIRST_COMPLETED)
        finally:
            fake.hub.remove(connection, by_client_id=fake.config.dialect == "upstream")
            for task in (sender, receiver):
                task.cancel()
            for task in (sender, receiver):
                with contextlib.suppress(asyncio.CancelledError, RuntimeError, OSError):
                    await task


websocket_endpoint = WebSocketEndpoint()


async def _send_loop(send: Send, connection: Connection) -> None:
    while True:
        for frame in await connection.get_all():
            if frame is None:
                await send({"type": "websocket.close", "code": 1001})
                return
            if isinstance(frame, bytes):
                await send({"type": "websocket.send", "bytes": frame})
            else:
                await send({"type": "websocket.send", "text": frame})


async def _receive_loop(receive: Receive, connection: Connection, fake: FakeComfy) -> None:
    first = True
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            first = False
            continue
        if first and isinstance(data, dict) and data.get("type") == "feature_flags":
            flags = data.get("data")
            connection.supports_preview_metadata = isinstance(flags, dict) and bool(
                flags.get("supports_preview_metadata")
            )
            features = server_features(fake.config.dialect == "upstream")
            connection.put(json.dumps({"type": "feature_flags", "data": features}))
        first = False
