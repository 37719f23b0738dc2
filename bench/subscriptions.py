"""Subscriptions per API process: idle memory, 1 event/s to all of them, and abrupt-disconnect churn.

    .venv/bin/python -m bench.subscriptions [--quick] [--json PATH] [--subscribers N] [--events N]
        [--disconnects N] [--clients P]

Client processes (bench/subscribers.py, P of them) hold `--subscribers` graphql-transport-ws subscriptions to
one QUEUED generation on one API process; what is measured is the API process (RSS via psutil).
1. idle: API RSS before and after, per subscription; against the limit, the same number of plain
   websockets held open on the fake ComfyUI (its own small server, comfy/fake/asgi.py: what a websocket costs
   at least; the API's are uvicorn's);
2. a worker then runs the generation at 1 progress event/s (`--events` steps of 1 s): latency from the
   fake's `progress` to each subscriber's receipt; against the limit, a run queued straight on the fake
   whose `progress` the fake broadcasts to the plain websockets of 1. (ComfyUI sends `progress` to every
   socket), with the same clients measuring; and the machine's floor, the same number of plain TCP writes
   and reads with nothing else (bench/floor.py);
3. churn: `--disconnects` cycles of connect, subscribe, SNAPSHOT, TCP reset; API RSS after a warm-up tenth
   and at the end (growth %), and the listener count left behind;
polling baseline: how many viewers polling a status query once a second one API process can serve
(status queries/s, 32 concurrent pollers).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

from bench.floor import fanout_floor
from bench.stack import (
    STATUS,
    Api,
    Proc,
    Report,
    Stack,
    base_parser,
    latency_row,
    raise_nofile,
    ratio,
    run,
    running_stack,
)


class _Clients:
    """P subscriber processes; each prints JSON lines."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(
        self, stack: Stack, mode: str, count: int, parts: int, *, gid: str = "", url: str = "", events: int = 0
    ) -> None:
        share = [count // parts + (1 if i < count % parts else 0) for i in range(parts)]
        for n in share:
            if n == 0:
                continue
            # --opt=value: a token (or "-") starting with "-" must not read as an option to argparse.
            args = ["-m", "bench.subscribers", mode, f"--url={url or stack.ws_url}", f"--token={stack.token}"]
            args += [f"--id={gid or '-'}", f"--count={n}", f"--events={events}"]
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    *args,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=stack.env,
                    # One line carries every latency a process measured (10 events x 500 subscribers
                    # is ~100 KB): above asyncio's default 64 KiB line limit.
                    limit=64 * 1024 * 1024,
                )
            )

    async def lines(self, timeout_s: float) -> list[dict[str, Any]]:
        async def one(proc: asyncio.subprocess.Process) -> dict[str, Any]:
            assert proc.stdout is not None
            raw = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
            if not raw:
                raise RuntimeError(f"subscriber process exited ({await proc.wait()})")
            data: dict[str, Any] = json.loads(raw)
            return data

        return list(await asyncio.gather(*(one(p) for p in self.procs)))

    def tell(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"stop\n")

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        self.procs.clear()


async def _settle(proc: Proc, seconds: float = 1.0) -> int:
    await asyncio.sleep(seconds)
    return proc.rss()


async def _run_on_fake(stack: Stack, *, steps: int) -> None:
    """Queue a `steps`-step run straight on the fake and wait until its history says it is done."""
    prompt = await stack.fake_prompt(steps=steps)
    async with httpx.AsyncClient(base_url=stack.fake_url, timeout=10) as client:
        for _ in range(int((steps * 1.0 + 60) / 0.25)):
            if (await client.get(f"/history/{prompt}")).json():
                return
            await asyncio.sleep(0.25)
    raise TimeoutError(f"prompt {prompt} did not finish on the fake")


async def polling_capacity(api: Api, gid: str, seconds: float) -> float:
    done = 0
    deadline = time.monotonic() + seconds

    async def poller() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await api.execute(STATUS, {"id": gid})
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(poller() for _ in range(32)))
    return done / (time.monotonic() - started)


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10, help="progress events at 1/s to every subscriber")
    parser.add_argument("--disconnects", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4, help="subscriber processes")
    args = parser.parse_args()
    subscribers, events, disconnects, clients = args.subscribers, args.events, args.disconnects, args.clients
    if args.quick:
        subscribers, events, disconnects, clients = 200, 2, 500, 2
    raise_nofile(subscribers + 2000)
    report = Report(
        "subscriptions",
        {"subscribers": subscribers, "events": events, "disconnects": disconnects, "clients": clients},
    )
    async with running_stack(step_time=1.0) as stack:
        assert stack.api is not None
        api = Api(stack, max_connections=32)
        group = _Clients()
        try:
            gid = await api.create(steps=events, prompt="watched by many")  # no worker yet: stays QUEUED
            # 1. idle subscriptions
            api_before = await _settle(stack.api)
            setup = time.monotonic()
            await group.start(stack, "hold", subscribers, clients, gid=gid)
            ready = sum(line["ready"] for line in await group.lines(120 + subscribers / 20))
            setup_s = time.monotonic() - setup
            api_after = await _settle(stack.api, 2.0)
            listeners = (await stack.metrics()).get("safelight_subscribers")
            per_sub = (api_after - api_before) / max(1, ready) / 1024
            # limit: the same number of plain websockets on the fake
            raw = _Clients()
            fake_before = await _settle(stack.fake)
            await raw.start(stack, "raw", subscribers, clients, url=stack.fake_ws_url, events=events)
            raw_ready = sum(line["ready"] for line in await raw.lines(120 + subscribers / 20))
            fake_after = await _settle(stack.fake, 2.0)
            # limit for 2.: the fake broadcasts a run's 1/s progress straight to the same number of sockets
            await _run_on_fake(stack, steps=events)
            # The run is in the fake's history before its last progress has reached every socket: each
            # client reports once all of its sockets have had every event; one still short is told to stop.
            try:
                raw_lines = await raw.lines(30)
            except TimeoutError:
                raw.tell()
                raw_lines = await raw.lines(60)
            raw_latencies = [ms for line in raw_lines for ms in line["latencies_ms"]]
            await raw.stop()
            per_raw = (fake_after - fake_before) / max(1, raw_ready) / 1024
            report.add("idle", "limit (plain websocket on the fake)", n=raw_ready, kb_each=per_raw)
            report.add(
                "idle",
                "safelight",
                n=ready,
                kb_each=per_sub,
                listeners=listeners,
                api_rss_mb=api_after / 2**20,
                setup_per_s=ready / setup_s,
                ratio_to_limit=ratio(per_sub, per_raw),
            )
            report.target("idle subscriptions held", ready, 10_000, at_least=True)
            report.target("KB per idle subscription", per_sub, 40.0)
            # 2. 1 event/s to every subscriber
            await stack.start_workers(1)
            lines = await group.lines(60 + events * 30 + subscribers / 50)
            await group.stop()
            latencies = [ms for line in lines for ms in line["latencies_ms"]]
            limit = latency_row(
                report, "1 event/s to all", "limit (plain websockets on the fake)", raw_latencies,
                expected=raw_ready * events,
            )  # fmt: skip
            row = latency_row(report, "1 event/s to all", "safelight", latencies, expected=subscribers * events)
            row["completed"] = sum(line["completed"] for line in lines)
            row["p50_ratio"] = ratio(row.get("p50"), limit.get("p50"))
            row["p99_ratio"] = ratio(row.get("p99"), limit.get("p99"))
            # the machine's own floor: the same number of plain TCP writes and reads, nothing else
            floor_ms = await fanout_floor(sockets=subscribers, clients=clients, rounds=events)
            floor = latency_row(
                report, "1 event/s to all", "floor (raw TCP sends)", floor_ms, expected=subscribers * events
            )
            row["p99_over_floor"] = ratio(row.get("p99"), floor.get("p99"))
            report.target("p99 at 1 event/s to every subscriber (ms)", row.get("p99"), 100.0)
            # polling baseline: status queries/s one API process serves
            per_s = await polling_capacity(api, gid, 3.0 if args.quick else 10.0)
            report.add("viewers at 1 poll/s", "polling design", n=int(per_s), queries_per_s=per_s)
            # 3. abrupt disconnects
            await stack.stop_workers()
            churn_gid = await api.create(steps=1, prompt="churned")  # QUEUED: live listeners, not a replay
            warm = max(1, disconnects // 10)
            await group.start(stack, "churn", warm, clients, gid=churn_gid)
            first = await group.lines(600 + warm / 20)
            await group.stop()
            rss_warm = await _settle(stack.api, 2.0)
            await group.start(stack, "churn", disconnects - warm, clients, gid=churn_gid)
            rest = await group.lines(600 + disconnects / 20)
            await group.stop()
            rss_end = await _settle(stack.api, 2.0)
            churned = sum(line["done"] for line in first + rest)
            failed = sum(line["failed"] for line in first + rest)
            seconds = max(line["seconds"] for line in first) + max(line["seconds"] for line in rest)
            growth = (rss_end - rss_warm) / rss_warm * 100
            left = (await stack.metrics()).get("safelight_subscribers")
            report.add(
                "abrupt disconnects",
                "safelight",
                n=churned,
                failed=failed,
                per_s=churned / seconds,
                rss_warm_mb=rss_warm / 2**20,
                rss_end_mb=rss_end / 2**20,
                growth_pct=growth,
                listeners_left=left,
            )
            report.target("RSS growth after the disconnect soak (%)", growth, 1.0)
        finally:
            await group.stop()
            await api.aclose()
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    run(main())
