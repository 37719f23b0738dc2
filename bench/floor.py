"""The machine's floor for fan-out: one frame written to N loopback TCP sockets, each receipt stamped.

    .venv/bin/python -m bench.floor [--quick] [--json PATH] [--sockets N] [--clients P] [--rounds R]

No websocket, no HTTP, no event loop on the sending side: a thread of the benchmark process stamps the
wall time into a 256-byte frame (about one Safelight progress message) and `send`s it to every socket in
a plain loop, once a second; P reader processes, each a plain `epoll` and `recv` loop, record receipt
minus stamp. This is what 1 event/s to N subscribers costs on this machine before anything Safelight,
uvicorn or a websocket library adds: the kernel's work for N loopback writes and N reads, shared with
the readers on the same cores. bench.subscriptions runs it beside its limit and Safelight rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from bench.stack import Report, base_parser, latency_row, measuring_process, raise_nofile, run

_FRAME = 256
_ROOT = str(Path(__file__).resolve().parent.parent)
_STAMP = struct.Struct("<d")


async def fanout_floor(*, sockets: int, clients: int, rounds: int, gap_s: float = 1.0) -> list[float]:
    """Latencies (ms) of `rounds` frames to `sockets` connections read by `clients` processes."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=min(sockets, 65535))
    port = listener.getsockname()[1]
    readers: list[asyncio.subprocess.Process] = []
    connections: list[socket.socket] = []
    try:
        shares = [sockets // clients + (1 if i < sockets % clients else 0) for i in range(clients)]
        for share in (s for s in shares if s):
            readers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.floor",
                    "read",
                    f"--port={port}",
                    f"--count={share}",
                    f"--rounds={rounds}",
                    stdout=asyncio.subprocess.PIPE,
                    cwd=_ROOT,
                    limit=64 * 1024 * 1024,  # one line carries every latency a reader measured
                )
            )
        connections = await asyncio.to_thread(_accept, listener, sockets)
        for reader in readers:
            assert reader.stdout is not None
            ready = json.loads(await asyncio.wait_for(reader.stdout.readline(), 120))
            if ready.get("ready") is None:
                raise RuntimeError(f"floor reader did not start: {ready}")
        for _ in range(rounds):
            await asyncio.sleep(gap_s)
            await asyncio.to_thread(_send_all, connections)
        latencies: list[float] = []
        for reader in readers:
            assert reader.stdout is not None
            line = await asyncio.wait_for(reader.stdout.readline(), 60 + rounds * gap_s)
            if not line:
                raise RuntimeError(f"floor reader exited ({await reader.wait()})")
            latencies.extend(json.loads(line)["latencies_ms"])
        return latencies
    finally:
        for connection in connections:
            connection.close()
        listener.close()
        for reader in readers:
            if reader.returncode is None:
                reader.kill()
            await reader.wait()


def _accept(listener: socket.socket, count: int) -> list[socket.socket]:
    connections = []
    for _ in range(count):
        connection, _ = listener.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connections.append(connection)
    return connections


def _send_all(connections: list[socket.socket]) -> None:
    frame = _STAMP.pack(time.time()) + b"x" * (_FRAME - _STAMP.size)
    for connection in connections:
        connection.sendall(frame)


def _read(port: int, count: int, rounds: int) -> None:
    """A reader process: `count` connections, `rounds` frames on each; one JSON line when ready, one at the end."""
    measuring_process()
    raise_nofile(count + 100)
    poller = select.epoll()
    connections: dict[int, tuple[socket.socket, bytearray]] = {}
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.setblocking(False)
        poller.register(connection.fileno(), select.EPOLLIN)
        connections[connection.fileno()] = (connection, bytearray())
    _emit({"ready": count})
    latencies: list[float] = []
    expected = count * rounds
    deadline = time.monotonic() + 60 + rounds * 2
    while len(latencies) < expected and time.monotonic() < deadline:
        for fd, _ in poller.poll(1.0):
            connection, pending = connections[fd]
            data = connection.recv(65536)
            received = time.time()
            if not data:
                poller.unregister(fd)
                continue
            pending += data
            while len(pending) >= _FRAME:
                (stamp,) = _STAMP.unpack_from(pending)
                latencies.append((received - stamp) * 1000)
                del pending[:_FRAME]
    _emit({"latencies_ms": latencies})
    for connection, _ in connections.values():
        connection.close()


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4, help="reader processes")
    parser.add_argument("--rounds", type=int, default=10, help="frames to every socket, one a second")
    args = parser.parse_args()
    sockets, clients, rounds = (200, 2, 2) if args.quick else (args.sockets, args.clients, args.rounds)
    raise_nofile(sockets + 1000)
    report = Report("floor", {"sockets": sockets, "clients": clients, "rounds": rounds, "quick": args.quick})
    latencies = await fanout_floor(sockets=sockets, clients=clients, rounds=rounds)
    row = latency_row(report, "1 event/s to all", "floor (raw TCP sends)", latencies, expected=sockets * rounds)
    # SPEC §10 asks p99 <= 100 ms of Safelight's subscribers: can this machine do it with nothing in between?
    report.target("floor p99 at 1 event/s to every socket (ms)", row.get("p99"), 100.0)
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    if sys.argv[1:2] == ["read"]:
        reader_args = argparse.ArgumentParser()
        reader_args.add_argument("read")
        reader_args.add_argument("--port", type=int, required=True)
        reader_args.add_argument("--count", type=int, required=True)
        reader_args.add_argument("--rounds", type=int, required=True)
        options = reader_args.parse_args()
        _read(options.port, options.count, options.rounds)
    else:
        run(main())
