"""A client process for bench.subscriptions: many GraphQL websocket subscribers, or connect/abort churn.

    python -m bench.subscribers hold  --url WS --token T --id GID --count N
    python -m bench.subscribers churn --url WS --token T --id GID --count N [--parallel P]

`hold` opens N graphql-transport-ws connections subscribed to `generationEvents(id)`, prints
`{"ready": N}` once every one has its SNAPSHOT, records the latency of each PROGRESS (receipt wall time
minus `emittedAt`), and on a line on stdin (or when every subscription completed) prints
`{"latencies_ms": [...], "completed": K}` and exits. `raw` holds N plain websockets on the fake (the
baseline), records the latency of each `progress` the fake broadcasts, and prints its line once every socket
has had `--events` of them (or on a line on stdin).
`churn` runs N cycles of connect, subscribe, SNAPSHOT, then an abrupt disconnect (TCP reset, no close
frame), P at a time, and prints the counts.
Every line on stdout is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import struct
import sys
import time
from typing import Any

import uvloop
import websockets

from bench.stack import EVENTS, TRANSPORT_WS, measuring_process, raise_nofile

_SETUP_PARALLEL = 10  # per client process: the API answers each with a PostgreSQL read


async def _subscribe(url: str, token: str, gid: str) -> Any:
    ws = await websockets.connect(
        url, subprotocols=[TRANSPORT_WS], max_size=None, compression=None, open_timeout=60, ping_interval=None
    )  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), 60))
    if ack.get("type") != "connection_ack":
        raise RuntimeError(f"no ack: {ack}")
    payload = {"query": EVENTS, "variables": {"id": gid}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if message.get("type") == "next":
            return ws
        if message.get("type") in ("error", "complete"):
            raise RuntimeError(f"subscription refused: {message}")


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def hold(url: str, token: str, gid: str, count: int) -> None:
    sockets: list[Any] = []
    limit = asyncio.Semaphore(_SETUP_PARALLEL)

    async def one() -> None:
        async with limit:
            sockets.append(await _subscribe(url, token, gid))

    await asyncio.gather(*(one() for _ in range(count)))
    _emit({"ready": len(sockets)})
    latencies: list[float] = []
    completed = 0

    async def reader(ws: Any) -> None:
        nonlocal completed
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                received = time.time()
                message = json.loads(raw)
                if message.get("type") == "complete":
                    completed += 1
                    return
                if message.get("type") == "next":
                    event = message["payload"]["data"]["generationEvents"]
                    emitted = (event.get("progress") or {}).get("emittedAt")
                    if event["kind"] == "PROGRESS" and emitted is not None:
                        latencies.append((received - emitted) * 1000)

    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    loop = asyncio.get_running_loop()
    stop = loop.run_in_executor(None, sys.stdin.readline)
    await asyncio.wait([stop, asyncio.gather(*readers)], return_when=asyncio.FIRST_COMPLETED)
    _emit({"latencies_ms": latencies, "completed": completed})
    for task in readers:
        task.cancel()
    for ws in sockets:
        _abort(ws)


def _abort(ws: Any) -> None:
    """Reset the TCP connection: no close frame, no FIN, no TIME_WAIT left behind."""
    transport = ws.transport
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def churn(url: str, token: str, gid: str, count: int, parallel: int) -> None:
    done = failed = 0
    counter = iter(range(count))
    started = time.monotonic()

    async def runner() -> None:
        nonlocal done, failed
        for _ in counter:
            try:
                ws = await _subscribe(url, token, gid)
            except (OSError, RuntimeError, TimeoutError, websockets.WebSocketException):
                failed += 1
                continue
            _abort(ws)
            done += 1

    await asyncio.gather(*(runner() for _ in range(parallel)))
    _emit({"done": done, "failed": failed, "seconds": time.monotonic() - started})


async def raw(url: str, count: int, events: int) -> None:
    """Baseline: N plain websockets to the fake ComfyUI's /ws, held until a line on stdin.

    Each records the latency of every stamped `progress` the fake broadcasts (receipt wall time minus
    `safelight_ts`): the same measurement as `hold`, with nothing between ComfyUI and the client.
    """
    sockets: list[Any] = []
    limit = asyncio.Semaphore(_SETUP_PARALLEL)

    async def one(i: int) -> None:
        async with limit:
            # A client id unique across client processes: the fake, like ComfyUI, keeps one socket per id.
            client_id = f"raw-{os.getpid()}-{i}"
            ws = await websockets.connect(
                f"{url}?clientId={client_id}", max_size=None, compression=None, open_timeout=60, ping_interval=None
            )
            sockets.append(ws)

    await asyncio.gather(*(one(i) for i in range(count)))
    _emit({"ready": len(sockets)})
    latencies: list[float] = []

    async def reader(ws: Any) -> None:
        seen = 0
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                received = time.time()
                if isinstance(message, str) and '"progress"' in message:
                    data = json.loads(message)
                    stamp = data.get("data", {}).get("safelight_ts")
                    if data.get("type") == "progress" and stamp is not None:
                        latencies.append((received - stamp) * 1000)
                        seen += 1
                        if seen == events:
                            return

    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    stop = asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.wait([stop, asyncio.gather(*readers)], return_when=asyncio.FIRST_COMPLETED)
    for task in readers:
        task.cancel()
    for ws in sockets:
        _abort(ws)
    _emit({"closed": len(sockets), "latencies_ms": latencies})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["hold", "churn", "raw"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--events", type=int, default=0, help="raw: progress messages each socket waits for")
    args = parser.parse_args()
    raise_nofile(args.count + 1000)
    if args.mode != "churn":  # churn measures no latency, and its closed connections are cyclic garbage
        measuring_process()
    if args.mode == "raw":
        uvloop.run(raw(args.url, args.count, args.events))
    elif args.mode == "hold":
        uvloop.run(hold(args.url, args.token, args.id, args.count))
    else:
        uvloop.run(churn(args.url, args.token, args.id, args.count, args.parallel))


if __name__ == "__main__":
    main()
