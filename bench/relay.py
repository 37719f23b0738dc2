"""Relay latency: ComfyUI `progress` emitted → GraphQL subscriber receipt, at 10, 500 and 2,000 events/s.

    .venv/bin/python -m bench.relay [--quick] [--json PATH] [--rates 10,500,2000] [--seconds S]

One generation per rate runs a KSampler with `rate * seconds` steps on the fake ComfyUI (step_time = 1/rate,
no previews, every `progress` stamped with the fake's wall time). Side by side, in the same run:
- limit: a client on the fake's own websocket (ComfyUI → client directly); Safelight adds the difference;
- safelight: a `generationEvents` subscriber on the API (fake → worker → Redis → API → websocket);
- polling: the polling design (bench/polling.py) never shows a step, so its figure is the one it has:
  `execution_success` → the frontend's 1 s status poll sees SUCCEEDED, against Safelight's same figure.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.polling import poll_status
from bench.stack import (
    EVENTS,
    Api,
    Report,
    Stack,
    Subscription,
    base_parser,
    direct_progress_listener,
    events_of,
    latency_row,
    prompt_id,
    ratio,
    run,
    running_stack,
)

_MAX_STEPS = 10_000


async def _watch(stack: Stack, gid: str, out: list[tuple[float, dict[str, Any]]], timeout_s: float) -> float:
    """Subscribe and record every PROGRESS; returns the wall time the terminal event arrived."""
    async with Subscription.open(stack, EVENTS, {"id": gid}) as sub:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            received, data = await sub.next(timeout_s)
            if data is None:
                break
            event = data["generationEvents"]
            out.append((received, event))
            if event["terminal"]:
                return received
    raise TimeoutError(f"generation {gid} did not finish in {timeout_s} s")


async def relay_case(stack: Stack, api: Api, report: Report, rate: float, seconds: float) -> dict[str, Any]:
    steps = max(2, round(rate * seconds))
    # The "limit (direct ws)" baseline listens on a socket of its own beside the worker's: only the packaging
    # dialect sends a prompt's `progress` to every socket (upstream ComfyUI, the fake's default, sends it to
    # the submitter's alone).
    await stack.configure_fake(step_time=1.0 / rate, dialect="packaging")
    direct: list[tuple[float, dict[str, Any]]] = []
    ready, stop = asyncio.Event(), asyncio.Event()
    listener = asyncio.create_task(direct_progress_listener(stack, direct, ready, stop))
    await asyncio.wait_for(ready.wait(), 10)
    # A generation runs at most 10,000 steps: longer runs queue several, back to back on the fake.
    parts = [min(_MAX_STEPS, steps - start) for start in range(0, steps, _MAX_STEPS)]
    gids = [await api.create(steps=n, prompt=f"relay {rate:g}/s part {i}") for i, n in enumerate(parts)]
    pids = {prompt_id(gid) for gid in gids}
    seen: list[tuple[float, dict[str, Any]]] = []
    cpu_before = {p.name: p.cpu_seconds() for p in [stack.api, *stack.workers, stack.fake] if p is not None}
    clients_before = time.process_time()
    await asyncio.gather(*(_watch(stack, gid, seen, timeout_s=seconds * 3 + 60) for gid in gids))
    cpu = {
        name: round(p.cpu_seconds() - cpu_before[name], 2)
        for p in [stack.api, *stack.workers, stack.fake]
        if p is not None and (name := p.name) in cpu_before
    }
    cpu["clients (this process)"] = round(time.process_time() - clients_before, 2)
    await asyncio.sleep(0.2)
    stop.set()
    await listener
    mine = [(r, d) for r, d in direct if d.get("prompt_id") in pids and "safelight_ts" in d]
    stamps = [d["safelight_ts"] for _, d in mine]
    emit_rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    direct_ms = [(r - d["safelight_ts"]) * 1000 for r, d in mine]
    progress = [(r, e) for r, e in seen if e["kind"] == "PROGRESS" and e["progress"]["emittedAt"] is not None]
    safelight_ms = [(r - e["progress"]["emittedAt"]) * 1000 for r, e in progress]
    worker_ms = [(e["at"] - e["progress"]["emittedAt"]) * 1000 for _, e in progress]
    api_ms = [(r - e["at"]) * 1000 for r, e in progress]
    case = f"{rate:g}/s"
    limit = latency_row(report, case, "limit (direct ws)", direct_ms, events=len(direct_ms), emit_rate=emit_rate)
    row = latency_row(report, case, "safelight", safelight_ms, events=len(safelight_ms), of_steps=steps)
    row["p50_ratio"] = ratio(row.get("p50"), limit.get("p50"))
    row["p99_ratio"] = ratio(row.get("p99"), limit.get("p99"))
    row["added_p50"] = row.get("p50", float("nan")) - limit.get("p50", float("nan"))
    row["added_p99"] = row.get("p99", float("nan")) - limit.get("p99", float("nan"))
    latency_row(report, case, "  of which fake→published", worker_ms)
    latency_row(report, case, "  of which published→subscriber", api_ms)
    report.note(f"{case}: fake emitted {len(stamps)} progress at {emit_rate:.0f}/s (asked {rate:g}/s); cpu s {cpu}")
    if progress and len(progress) < len(stamps):
        # Progress is not durable: what a subscriber missed is only what ran before it subscribed (its
        # SNAPSHOT carries that state), unless this count differs from the shortfall.
        first = min(e["progress"]["emittedAt"] for _, e in progress)
        before = sum(1 for stamp in stamps if stamp < first)
        report.note(f"{case}: {len(stamps) - len(progress)} progress not seen, {before} of them before the first seen")
    return row


async def terminal_case(stack: Stack, api: Api, report: Report, jobs: int) -> None:
    """execution_success → client sees SUCCEEDED: Safelight's push against the polling design."""
    await stack.configure_fake(step_time=0.01)
    gids = [await api.create(steps=20) for _ in range(jobs)]
    seen_at = await asyncio.gather(*(_watch(stack, gid, [], 120) for gid in gids))
    stats = await stack.fake_stats()
    success = {e["prompt_id"]: e["wall"] for e in events_of(stats, "execution_success")}
    safelight_ms = [(seen - success[prompt_id(gid)]) * 1000 for gid, seen in zip(gids, seen_at, strict=True)]
    sl = latency_row(report, "terminal", "safelight", safelight_ms)

    await stack.stop_workers()
    await stack.start_workers(1, kind="polling", concurrency=4)
    gids = [await api.create(steps=20) for _ in range(jobs)]
    polled = await asyncio.gather(*(poll_status(api, gid, until={"SUCCEEDED", "FAILED"}) for gid in gids))
    stats = await stack.fake_stats()
    success = {e["prompt_id"]: e["wall"] for e in events_of(stats, "execution_success")}
    polling_ms = [(seen - success[prompt_id(gid)]) * 1000 for gid, (seen, _) in zip(gids, polled, strict=True)]
    steps_seen = sum(1 for _, data in polled if data["progress"]["step"] not in (None, 0))
    row = latency_row(report, "terminal", "polling (1 s + 1 s)", polling_ms, steps_shown=steps_seen)
    row["p50_ratio"] = ratio(row.get("p50"), sl.get("p50"))
    report.note("the polling design shows no step at all (ComfyUI's HTTP API has no progress): 0 of 20 per job")


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--rates", default="10,500,2000", help="progress events per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each rate runs")
    parser.add_argument("--terminal-jobs", type=int, default=10, help="jobs for the terminal-latency comparison")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    seconds = args.seconds
    jobs = args.terminal_jobs
    if args.quick:
        seconds, jobs = 0.5, 2
    report = Report("relay", {"rates": rates, "seconds": seconds, "terminal_jobs": jobs, "quick": args.quick})
    async with running_stack() as stack:
        await stack.start_workers(1)
        api = Api(stack)
        try:
            await stack.configure_fake(step_time=0.001)
            await _watch(stack, await api.create(steps=5), [], 60)  # warm-up: connections, caches
            results = {}
            for rate in rates:
                results[rate] = await relay_case(stack, api, report, rate, max(seconds, 10 / rate if rate < 50 else 0))
            await terminal_case(stack, api, report, jobs)
            top = results.get(2000.0)
            if top is not None:
                report.target("relay p50 at 2,000/s (ms)", top.get("p50"), 2.0)
                report.target("relay p99 at 2,000/s (ms)", top.get("p99"), 10.0)
            report.params["api_rss_mb"] = round(stack.api.rss() / 2**20, 1) if stack.api else None
        finally:
            await api.aclose()
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    run(main())
