"""A bounded soak with one fault injected: does every generation end, and does every subscriber hear it end?

    .venv/bin/python -m bench.soak --fault worker-kill|pg-stop|redis-restart|comfy-down|api-restart|none
                                   [--n 500] [--users 5] [--quick] [--json PATH]

`--n` generations are created by `--users` users, a few at a time, on two workers (concurrency 4) and
one fake ComfyUI. Each user holds a `myGenerationEvents` subscription, and each generation has a
`generationEvents` subscription of its own; both kinds reconnect when their socket drops and resume
(`after`: the last sequence number, the last cursor). The API and the workers reach PostgreSQL and Redis
through TCP proxies (bench/proxy.py) of this process, so that a fault touches this soak only:

- worker-kill: one worker is SIGKILLed mid-load (the other takes its generations over);
- pg-stop: PostgreSQL unreachable for 5 s (the proxy refuses and drops every connection);
- redis-restart: Redis unreachable for 2 s and empty when it comes back (this namespace's keys and
  its arq jobs deleted), as a restarted Redis without persistence;
- comfy-down: the fake ComfyUI killed, and started again (empty) on its port after 60 s (5 s --quick);
- api-restart: the API stopped (SIGTERM) and started again on its port.

Figures: generations stuck (not terminal) 2 minutes after the fault, terminal events lost by each kind of
subscription (a generation terminal in the database whose subscriber never got its terminal event), and
ComfyUI executions per prompt (the most for one prompt; prompts run more than once). Targets: 0, 0, 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import websockets

from bench.proxy import CuttableProxy
from bench.stack import (
    TRANSPORT_WS,
    Client,
    Report,
    Stack,
    base_parser,
    run,
    running_stack,
    spawn,
    wait_http,
)

FAULTS = ("worker-kill", "pg-stop", "redis-restart", "comfy-down", "api-restart", "none")
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
STUCK_AFTER_S = 120.0

GEN_EVENTS = """
subscription($id: ID!, $after: Int) { generationEvents(id: $id, after: $after) { seq kind terminal status } }
"""
FEED = """
subscription($after: String) { myGenerationEvents(after: $after) { generationId seq kind terminal status cursor } }
"""


@dataclass
class User:
    id: uuid.UUID
    token: str
    feed_terminal: set[str] = field(default_factory=set)
    feed_seen: set[str] = field(default_factory=set)
    feed_reconnects: int = 0


@dataclass
class Watch:
    """One generation's generationEvents subscriber: the last durable seq it got, and whether it ended."""

    gid: str
    last: int = 0
    terminal: str | None = None
    reconnects: int = 0


async def _session(ws: Any, token: str, query: str, variables: dict[str, Any]) -> None:
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
    if ack.get("type") != "connection_ack":
        raise ConnectionError(f"no connection_ack: {ack}")
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}))


async def _messages(ws: Any) -> Any:
    """Each `next` payload's data; returns when the subscription completes."""
    async for raw in ws:
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "next":
            payload = message["payload"]
            if payload.get("errors"):
                raise ConnectionError(f"subscription errors: {payload['errors']}")
            yield payload["data"]
        elif kind == "complete":
            return
        elif kind == "error":
            raise ConnectionError(f"subscription error: {message}")
        elif kind == "ping":
            await ws.send(json.dumps({"type": "pong"}))


async def watch_generation(stack: Stack, token: str, watch: Watch, stop: asyncio.Event) -> None:
    """generationEvents until its terminal event, reconnecting with `after` = the last durable seq."""
    while watch.terminal is None and not stop.is_set():
        try:
            async with websockets.connect(stack.ws_url, subprotocols=[TRANSPORT_WS], max_size=None) as ws:  # type: ignore[list-item]
                await _session(ws, token, GEN_EVENTS, {"id": watch.gid, "after": watch.last})
                async for data in _messages(ws):
                    event = data["generationEvents"]
                    if event["kind"] in ("STATUS", "IMAGE"):
                        watch.last = max(watch.last, int(event["seq"]))
                    if event["terminal"]:
                        watch.terminal = event["status"] or event["kind"]
                        return
        except (OSError, ConnectionError, websockets.WebSocketException, TimeoutError):
            pass
        watch.reconnects += 1
        await asyncio.sleep(0.5)


async def watch_feed(stack: Stack, user: User, ready: asyncio.Event, stop: asyncio.Event) -> None:
    """myGenerationEvents for as long as the soak runs, reconnecting with `after` = the last cursor."""
    cursor: str | None = None
    while not stop.is_set():
        try:
            async with websockets.connect(stack.ws_url, subprotocols=[TRANSPORT_WS], max_size=None) as ws:  # type: ignore[list-item]
                await _session(ws, user.token, FEED, {"after": cursor})
                ready.set()
                async for data in _messages(ws):
                    event = data["myGenerationEvents"]
                    user.feed_seen.add(event["generationId"])
                    if event.get("cursor"):
                        cursor = event["cursor"]
                    if event["kind"] == "STATUS" and event["status"] in TERMINAL:
                        user.feed_terminal.add(event["generationId"])
        except (OSError, ConnectionError, websockets.WebSocketException, TimeoutError):
            pass
        if stop.is_set():
            return
        user.feed_reconnects += 1
        await asyncio.sleep(0.5)


async def _make_users(database_url: str, count: int) -> list[User]:
    from db.engine import create_engine, create_session_factory
    from db.users import create_token, ensure_user
    from settings import load_settings

    engine = create_engine(load_settings(database_url=database_url), pool_size=1)
    users = []
    try:
        async with create_session_factory(engine)() as session:
            for index in range(count):
                user = await ensure_user(session, name=f"soak-{index}")
                users.append(User(user.id, await create_token(session, user_id=user.id, name="soak")))
            await session.commit()
    finally:
        await engine.dispose()
    return users


async def _statuses(database_url: str) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id::text AS id, status::text AS status FROM generations")
    finally:
        await conn.close()
    return {row["id"]: row["status"] for row in rows}


async def _fake_executions(stack: Stack) -> Counter[str]:
    with contextlib.suppress(httpx.HTTPError):
        return Counter((await stack.fake_stats())["executions"])
    return Counter()


class Faults:
    def __init__(self, stack: Stack, pg: CuttableProxy, redis: CuttableProxy, *, quick: bool) -> None:
        self.stack = stack
        self.pg = pg
        self.redis = redis
        self.quick = quick
        self.executions: Counter[str] = Counter()  # of a fake that was killed

    async def inject(self, fault: str, generation_ids: list[str]) -> None:
        stack = self.stack
        if fault == "worker-kill":
            victim = stack.workers[0]
            os.kill(victim.pid, signal.SIGKILL)
            await victim.process.wait()
        elif fault == "pg-stop":
            await self.pg.cut()
            await asyncio.sleep(5)
            await self.pg.restore()
        elif fault == "redis-restart":
            await self.redis.cut()
            await _empty_redis(stack, generation_ids)
            await asyncio.sleep(2)
            await self.redis.restore()
        elif fault == "comfy-down":
            self.executions += await _fake_executions(stack)
            stack.fake.process.kill()
            await stack.fake.process.wait()
            await asyncio.sleep(5 if self.quick else 60)
            port = urlsplit(stack.fake_url).port
            stack.fake = await spawn(
                "fake-comfyui-2", ["-m", "bench.fake_server", "--port", str(port)], stack.env, log_dir=stack.log_dir
            )
            stack._extra.append(stack.fake)  # stopped with the stack
            await wait_http(f"{stack.fake_url}/system_stats", stack.fake)
            await stack.configure_fake(step_time=0.05, stamp_messages=True, preview=False)
        elif fault == "api-restart":
            assert stack.api is not None
            await stack.api.stop()
            port = urlsplit(stack.api_url).port
            env = {**stack.env, "SAFELIGHT_PORT": str(port)}
            args = ["-m", "safelight.cli", "api", "--port", str(port)]
            stack.api = await spawn("api-2", args, env, log_dir=stack.log_dir)
            await wait_http(f"{stack.api_url}/healthz", stack.api)


async def _empty_redis(stack: Stack, generation_ids: list[str]) -> None:
    """What a Redis restarted without persistence has lost: this namespace's keys and its arq jobs."""
    from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
    from redis.asyncio import Redis

    client: Redis = Redis.from_url(stack.redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{stack.namespace}:*", count=1000)]
        for gid in generation_ids:
            for prefix in (job_key_prefix, in_progress_key_prefix, retry_key_prefix):
                keys += [key async for key in client.scan_iter(match=f"{prefix}gen:{gid}:*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


async def soak(args: Any, report: Report) -> None:
    n, users_n = args.n, args.users
    async with running_stack(api=False, step_time=0.05, namespace_prefix="slsoak") as stack:
        server = urlsplit(stack.database_url)
        redis = urlsplit(stack.redis_url)
        pg_proxy = CuttableProxy(server.hostname or "127.0.0.1", server.port or 5432)
        redis_proxy = CuttableProxy(redis.hostname or "127.0.0.1", redis.port or 6379)
        await pg_proxy.start()
        await redis_proxy.start()
        direct_database_url = stack.database_url
        stack.env["DATABASE_URL"] = pg_proxy.url(stack.database_url)
        stack.env["REDIS_URL"] = redis_proxy.url(stack.redis_url)
        stack.env["SAFELIGHT_WORKER_HEARTBEAT_S"] = "1"
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        try:
            await stack.start_api()
            await stack.start_workers(2, concurrency=4)
            users = await _make_users(direct_database_url, users_n)
            for user in users:
                ready = asyncio.Event()
                tasks.append(asyncio.create_task(watch_feed(stack, user, ready, stop)))
                await asyncio.wait_for(ready.wait(), 30)
            clients = []
            for user in users:
                stack.token = user.token
                clients.append(Client(stack))
            watches: list[Watch] = []
            owners: dict[str, User] = {}
            fault_at = n // 3
            faults = Faults(stack, pg_proxy, redis_proxy, quick=args.quick)
            fault_task: asyncio.Task[None] | None = None
            started = time.monotonic()
            for index in range(n):
                user = users[index % users_n]
                client = clients[index % users_n]
                for _ in range(100):  # the API may be restarting, or the database away
                    try:
                        _, gid = await client.create(steps=args.steps, prompt=f"soak {index}")
                        break
                    except (OSError, RuntimeError, ValueError, httpx.HTTPError):  # a bare 500 is not JSON
                        await asyncio.sleep(0.5)
                else:
                    raise RuntimeError("could not create a generation for 50 s")
                owners[gid] = user
                watch = Watch(gid)
                watches.append(watch)
                tasks.append(asyncio.create_task(watch_generation(stack, user.token, watch, stop)))
                if index == fault_at and args.fault != "none":
                    # After some are running and more are queued behind them.
                    await asyncio.sleep(1.0)
                    fault_task = asyncio.create_task(faults.inject(args.fault, list(owners)))
                if index % 10 == 9:
                    await asyncio.sleep(0.2)
            if fault_task is not None:
                await fault_task
            fault_done = time.monotonic()
            deadline = fault_done + STUCK_AFTER_S
            statuses: dict[str, str] = {}
            while time.monotonic() < deadline:
                statuses = await _statuses(direct_database_url)
                if all(statuses.get(w.gid) in TERMINAL for w in watches):
                    break
                await asyncio.sleep(1)
            settled_s = time.monotonic() - fault_done
            stuck = [w.gid for w in watches if statuses.get(w.gid) not in TERMINAL]
            # Subscribers get a little longer than the rows: an event follows its commit.
            grace = time.monotonic() + 15
            while time.monotonic() < grace:
                lost_gen = [w for w in watches if statuses.get(w.gid) in TERMINAL and w.terminal is None]
                lost_feed = [
                    w for w in watches if statuses.get(w.gid) in TERMINAL and w.gid not in owners[w.gid].feed_terminal
                ]
                if not lost_gen and not lost_feed:
                    break
                await asyncio.sleep(0.5)
            executions = faults.executions + await _fake_executions(stack)
            from jobs.worker.submit import prompt_id_for

            ours = {prompt_id_for(uuid.UUID(w.gid), a): w.gid for w in watches for a in range(1, 8)}
            runs = [count for pid, count in executions.items() if pid in ours]
            per_generation = Counter(
                ours[pid] for pid, count in executions.items() if pid in ours for _ in range(count)
            )
            outcome = Counter(statuses.get(w.gid, "?") for w in watches)
            report.add(
                args.fault,
                "safelight",
                n=n,
                users=users_n,
                stuck_after_2min=len(stuck),
                lost_generationEvents=len(lost_gen),
                lost_myGenerationEvents=len(lost_feed),
                max_executions_per_prompt=max(runs, default=0),
                prompts_run_twice=sum(1 for count in runs if count > 1),
                generations_run_twice=sum(1 for count in per_generation.values() if count > 1),
                settled_s=round(settled_s, 1),
                total_s=round(time.monotonic() - started, 1),
                **{status.lower(): count for status, count in sorted(outcome.items())},
                sub_reconnects=sum(w.reconnects for w in watches),
                feed_reconnects=sum(u.feed_reconnects for u in users),
            )
            report.target("stuck after 2 min", len(stuck), 0)
            report.target("lost terminal events (generationEvents)", len(lost_gen), 0)
            report.target("lost terminal events (myGenerationEvents)", len(lost_feed), 0)
            report.target("executions per prompt (max)", max(runs, default=0), 1)
            if stuck:
                report.note(f"stuck: {stuck[:5]}")
            for client in clients:
                await client.aclose()
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pg_proxy.close()
            await redis_proxy.close()


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--fault", choices=FAULTS, default="none")
    parser.add_argument("--n", type=int, default=500, help="generations")
    parser.add_argument("--users", type=int, default=5)
    # One fake ComfyUI runs prompts one at a time: 500 prompts of 20 steps of 0.05 s are 500 s of backend time, so
    # "stuck 2 minutes after the fault" would count the backlog, not what the fault left behind. 2 steps (50 s in all)
    # keep the count honest.
    parser.add_argument("--steps", type=int, default=2, help="sampler steps of each (0.05 s each on the fake)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.users, args.steps = min(args.n, 24), min(args.users, 2), min(args.steps, 10)
    report = Report("soak", {"fault": args.fault, "n": args.n, "users": args.users, "quick": args.quick})
    await soak(args, report)
    report.print()
    report.write(args.json)
    if not all(check["met"] for check in report.checks):
        raise SystemExit(1)


if __name__ == "__main__":
    run(main())
