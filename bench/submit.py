"""Mutation → `POST /prompt` arrival at the fake ComfyUI; cancel → `/interrupt` or queue-delete arrival.

    .venv/bin/python -m bench.submit [--quick] [--json PATH] [--submits N] [--cancels N]

Times are wall clock on one machine: the client notes when it sends the mutation, the fake logs when each
request arrives (`GET /_fake/stats`). Every timed request (mutations and the direct baseline alike) goes
through one lean keep-alive HTTP/1.1 client that stamps it just before its single write: httpx spends about
a millisecond of this machine's CPU before a request's bytes leave (and more reading the answer while the
servers still work), a client's cost that is not what these rows compare. A cancel is timed once its
subscription has answered with the SNAPSHOT, so the API is not still setting that up; one cancel round
before the measured ones warms up the statements each process builds on first use (as three mutations do
before the mutations are measured). Side by side:
- limit: the client sends `POST /prompt`, `/interrupt`, `/queue {delete}` straight to the fake;
- safelight: createGeneration / cancelGeneration through the API and a Safelight worker (pub/sub wake-up);
- polling: the same mutations served by the polling design (arq's stock 0.5 s queue poll, 1 s cancel check).
"""

from __future__ import annotations

import asyncio
import time
import uuid

from bench.stack import (
    EVENTS,
    TEMPLATES,
    Client,
    LeanHttp,
    Report,
    Stack,
    Subscription,
    base_parser,
    events_of,
    latency_row,
    prompt_id,
    ratio,
    run,
    running_stack,
)

_LONG_STEPS = 5000  # with 10 ms steps: 50 s, far longer than any cancel takes


async def _arrivals(stack: Stack, kind: str) -> dict[str, float]:
    """prompt id → wall time its request of `kind` arrived (submit, interrupt, delete)."""
    out: dict[str, float] = {}
    for event in events_of(await stack.fake_stats(), kind):
        ids = event.get("prompt_ids") or [event.get("prompt_id")]
        for pid in ids:
            if pid is not None:
                out.setdefault(pid, event["wall"])
    return out


async def _wait_for(stack: Stack, kind: str, pid: str, timeout_s: float = 30.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        arrivals = await _arrivals(stack, kind)
        if pid in arrivals:
            return arrivals[pid]
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no {kind} for {pid} within {timeout_s} s")


async def _until_progress(sub: Subscription) -> None:
    while True:
        _, data = await sub.next(60)
        if data is None:
            raise RuntimeError("finished before it could be cancelled")
        if data["generationEvents"]["kind"] == "PROGRESS" and data["generationEvents"]["progress"]["step"]:
            return


async def _until_terminal(sub: Subscription) -> str:
    while True:
        _, data = await sub.next(60)
        if data is None:
            raise RuntimeError("completed without a terminal event")
        if data["generationEvents"]["terminal"]:
            return str(data["generationEvents"]["status"])


async def _snapshot(sub: Subscription) -> None:
    """The subscription is set up once its first event (the SNAPSHOT) arrives."""
    _, data = await sub.next(60)
    if data is None or data["generationEvents"]["kind"] != "SNAPSHOT":
        raise RuntimeError(f"expected a SNAPSHOT first, got {data}")


async def submit_latency(
    stack: Stack, api: Client, count: int, gap_s: float, round_trips: list[float] | None = None
) -> list[float]:
    sent: dict[str, float] = {}
    for i in range(count):
        started, gid = await api.create(steps=1, prompt=f"submit {i} {uuid.uuid4().hex[:6]}")
        if round_trips is not None:
            round_trips.append((time.time() - started) * 1000)
        sent[prompt_id(gid)] = started
        await asyncio.sleep(gap_s)
    for pid in sent:
        await _wait_for(stack, "submit", pid)
    arrivals = await _arrivals(stack, "submit")
    return [(arrivals[pid] - t0) * 1000 for pid, t0 in sent.items()]


async def cancel_latency(stack: Stack, api: Client, rounds: int) -> tuple[list[float], list[float]]:
    """Per round: A runs, B waits in ComfyUI's queue; cancel B (queue delete), then A (interrupt)."""
    interrupts: list[float] = []
    deletes: list[float] = []
    for i in range(rounds):
        _, a = await api.create(steps=_LONG_STEPS, prompt=f"cancel A {i} {uuid.uuid4().hex[:6]}")
        async with Subscription.open(stack, EVENTS, {"id": a}) as sub_a:
            await _until_progress(sub_a)
            _, b = await api.create(steps=_LONG_STEPS, prompt=f"cancel B {i} {uuid.uuid4().hex[:6]}")
            await _wait_for(stack, "submit", prompt_id(b))
            async with Subscription.open(stack, EVENTS, {"id": b}) as sub_b:
                await _snapshot(sub_b)
                t0 = await api.cancel(b)
                status_b = await _until_terminal(sub_b)
            deletes.append((await _wait_for(stack, "delete", prompt_id(b)) - t0) * 1000)
            t0 = await api.cancel(a)
            status_a = await _until_terminal(sub_a)
            interrupts.append((await _wait_for(stack, "interrupt", prompt_id(a)) - t0) * 1000)
        if (status_a, status_b) != ("CANCELLED", "CANCELLED"):
            raise RuntimeError(f"expected both CANCELLED, got {status_a}, {status_b}")
    return interrupts, deletes


async def direct_latency(stack: Stack, count: int) -> tuple[list[float], list[float], list[float]]:
    """Baseline (a): the same requests sent straight to the fake."""
    from comfy.templates import build_workflow, load_templates, validate_params

    template = load_templates([TEMPLATES])["bench_txt2img"]
    params = validate_params(
        template,
        {"prompt": "direct", "width": 64, "height": 64, "seed": 1, "sampler_steps": 1, "checkpoint": _checkpoint()},
    )
    workflow = build_workflow(template, params, filename_prefix="direct")
    submits: list[float] = []
    interrupts: list[float] = []
    deletes: list[float] = []
    client = LeanHttp(stack.fake_url)
    try:
        await client.post("/queue", {})  # connection warm, as the API's and worker's pools are
        sent: dict[str, tuple[str, float]] = {}
        for _ in range(count):
            pid = str(uuid.uuid4())
            t0, status, _ = await client.post("/prompt", {"prompt": workflow, "client_id": "direct", "prompt_id": pid})
            if status != 200:
                raise RuntimeError(f"POST /prompt answered {status}")
            sent[pid] = ("submit", t0)
            pid_i = str(uuid.uuid4())
            t0, _, _ = await client.post("/interrupt", {"prompt_id": pid_i})
            sent[pid_i] = ("interrupt", t0)
            pid_d = str(uuid.uuid4())
            t0, _, _ = await client.post("/queue", {"delete": [pid_d]})
            sent[pid_d] = ("delete", t0)
            await asyncio.sleep(0.01)
    finally:
        await client.aclose()
    arrivals = {kind: await _arrivals(stack, kind) for kind in ("submit", "interrupt", "delete")}
    for pid, (kind, t0) in sent.items():
        value = (arrivals[kind][pid] - t0) * 1000
        {"submit": submits, "interrupt": interrupts, "delete": deletes}[kind].append(value)
    return submits, interrupts, deletes


def _checkpoint() -> str:
    from comfy.fake.catalog import CHECKPOINTS

    return CHECKPOINTS[0]


async def polling_latency(stack: Stack, api: Client, count: int, cancels: int) -> tuple[list[float], list[float]]:
    submits = await submit_latency(stack, api, count, gap_s=0.3)
    interrupts: list[float] = []
    for i in range(cancels):
        _, gid = await api.create(steps=_LONG_STEPS, prompt=f"polling cancel {i} {uuid.uuid4().hex[:6]}")
        pid = prompt_id(gid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if pid in {e["prompt_id"] for e in events_of(await stack.fake_stats(), "execution_start")}:
                break
            await asyncio.sleep(0.05)
        t0 = await api.cancel(gid)
        interrupts.append((await _wait_for(stack, "interrupt", pid) - t0) * 1000)
    return submits, interrupts


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--submits", type=int, default=200, help="mutations measured (Safelight, limit)")
    parser.add_argument("--cancels", type=int, default=30, help="cancel rounds (one delete + one interrupt each)")
    parser.add_argument("--polling", type=int, default=20, help="mutations measured on the polling design")
    args = parser.parse_args()
    submits, cancels, polling = args.submits, args.cancels, args.polling
    if args.quick:
        submits, cancels, polling = 5, 1, 2
    report = Report("submit", {"submits": submits, "cancels": cancels, "polling": polling, "quick": args.quick})
    async with running_stack(step_time=0.0) as stack:
        await stack.start_workers(1, concurrency=4)
        api = Client(stack)
        try:
            await submit_latency(stack, api, 3, gap_s=0.05)  # warm-up
            d_submit, d_interrupt, d_delete = await direct_latency(stack, submits)
            round_trips: list[float] = []
            s_submit = await submit_latency(stack, api, submits, gap_s=0.02, round_trips=round_trips)
            await stack.configure_fake(step_time=0.01)
            await cancel_latency(stack, api, 1)  # warm-up: each process's first cancel builds its statements
            s_interrupt, s_delete = await cancel_latency(stack, api, cancels)
            await stack.stop_workers()
            await stack.reset_fake()
            await stack.configure_fake(step_time=0.0)
            await stack.start_workers(1, kind="polling", concurrency=4)
            await stack.configure_fake(step_time=0.01)
            p_submit, p_interrupt = await polling_latency(stack, api, polling, max(1, polling // 10))
        finally:
            await api.aclose()
    for case, limit_ms, safelight_ms, polling_ms in (
        ("mutation→POST /prompt", d_submit, s_submit, p_submit),
        ("cancel→/interrupt", d_interrupt, s_interrupt, p_interrupt),
        ("cancel→queue delete", d_delete, s_delete, None),
    ):
        limit = latency_row(report, case, "limit (direct HTTP)", limit_ms)
        row = latency_row(report, case, "safelight", safelight_ms)
        row["p50_ratio"] = ratio(row.get("p50"), limit.get("p50"))
        if polling_ms is not None:
            p = latency_row(report, case, "polling (0.5 s poll, 1 s check)", polling_ms)
            p["p50_ratio"] = ratio(p.get("p50"), limit.get("p50"))
            row["polling_over_safelight_p50"] = ratio(p.get("p50"), row.get("p50"))
        if case.startswith("mutation"):
            report.target("mutation→POST /prompt p50 (ms)", row.get("p50"), 5.0)
            report.target("mutation→POST /prompt p99 (ms)", row.get("p99"), 20.0)
        else:
            report.target(f"{case} p99 (ms)", row.get("p99"), 20.0)
    latency_row(report, "mutation round trip", "safelight (API only)", round_trips)
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    run(main())
