"""`GET /ws?clientId=`: ComfyUI's websocket, with the feature-flag handshake of recording 03."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

from starlette.websockets import WebSocket, WebSocketDisconnect

from comfy.fake.hub import Connection
from comfy.fake.routes import SERVER_FEATURES
from comfy.fake.state import FakeComfy


async def websocket_endpoint(websocket: WebSocket) -> None:
    fake: FakeComfy = websocket.app.state.fake
    await websocket.accept()
    sid = websocket.query_params.get("clientId") or uuid.uuid4().hex
    connection = Connection(sid)
    fake.hub.add(connection)
    connection.put(json.dumps({"type": "status", "data": {**fake.status_data(), "sid": sid}}))
    node = fake.executor.reconnect_node(sid)
    if node is not None:
        connection.put(json.dumps({"type": "executing", "data": {"node": node}}))
    sender = asyncio.create_task(_send_loop(websocket, connection))
    receiver = asyncio.create_task(_receive_loop(websocket, connection))
    try:
        await asyncio.wait([sender, receiver], return_when=asyncio.FIRST_COMPLETED)
    finally:
        fake.hub.remove(connection)
        for task in (sender, receiver):
            task.cancel()
        for task in (sender, receiver):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                await task


async def _send_loop(websocket: WebSocket, connection: Connection) -> None:
    while True:
        frame = await connection.get()
        if frame is None:
            await websocket.close(code=1001)
            return
        if isinstance(frame, bytes):
            await websocket.send_bytes(frame)
        else:
            await websocket.send_text(frame)


async def _receive_loop(websocket: WebSocket, connection: Connection) -> None:
    first = True
    while True:
        message = await websocket.receive()
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
            connection.put(json.dumps({"type": "feature_flags", "data": SERVER_FEATURES}))
        first = False
