"""GPU idle gap on one backend: `execution_success` of a job → `execution_start` of the next, jobs back to back.

    .venv/bin/python -m bench.idle_gap [--quick] [--json PATH] [--jobs N] [--step-time S] [--steps N]

`--jobs` generations are created at once; each runs `--steps` sampler steps of `--step-time` on one fake
ComfyUI, whose event log (`GET /_fake/stats`, monotonic clock) gives every gap. Safelight keeps the
backend's queue primed (each job is submitted as soon as a worker slot takes it; `worker_concurrency`
slots per worker), so the next prompt is already queued when one finishes. Side by side, in the same run:
- limit: the same prompts posted straight to the fake at once (the fake's own gap between queued prompts);
- safelight: one worker, `worker_concurrency` = --concurrency (default 4, Safelight's default);
- polling: the polling design, same concurrency (its queue is primed too, but by a 0.5 s poll).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from bench.polling import poll_status
from bench.stack import (
    MY_EVENTS,
    TEMPLATES,
    Api,
    Report,
    Stack,
    Subscription,
    base_parser,
    latency_row,
    prompt_id,
    ratio,
    run,
    running_stack,
)


def _gaps(stats: dict[str, object], pids: set[str]) -> list[float]:
    """ms from each execution_success of ours to the next execution_start of ours."""
    log = [e for e in stats["events"] if e.get("prompt_id") in pids]  # type: ignore[attr-defined]
    gaps: list[float] = []
    last_success: float | None = None
    for event in log:
        if event["event"] == "execution_success":
            last_success = event["monotonic"]
        elif event["event"] == "execution_start" and last_success is not None:
            gaps.append((event["monotonic"] - last_success) * 1000)
            last_success = None
    return gaps


async def safelight_case(stack: Stack, api: Api, jobs: int, steps: int) -> list[float]:
    async with Subscription.open(stack, MY_EVENTS) as sub:
        ids = [await api.create(steps=steps, prompt=f"gap {i} {uuid.uuid4().hex[:6]}") for i in range(jobs)]
        done: set[str] = set()
        deadline = time.monotonic() + 120 + jobs
        while len(done) < jobs and time.monotonic() < deadline:
            _, data = await sub.next(120)
            if data is None:
                break
            event = data["myGenerationEvents"]
            if event["terminal"] and event["generationId"] in ids:
                done.add(event["generationId"])
    return _gaps(await stack.fake_stats(), {prompt_id(gid) for gid in ids})


async def direct_case(stack: Stack, jobs: int, steps: int) -> list[float]:
    from comfy.fake.catalog import CHECKPOINTS
    from comfy.templates import build_workflow, load_templates, validate_params

    template = load_templates([TEMPLATES])["bench_txt2img"]
    pids = [str(uuid.uuid4()) for _ in range(jobs)]
    async with httpx.AsyncClient(base_url=stack.fake_url, timeout=60) as client:
        for pid in pids:
            params = {
                "prompt": f"direct {pid}",
                "width": 64,
                "height": 64,
                "seed": 1,
                "sampler_steps": steps,
                "checkpoint": CHECKPOINTS[0],
            }
            workflow = build_workflow(template, validate_params(template, params), filename_prefix="direct")
            body = {"prompt": workflow, "client_id": "direct", "prompt_id": pid}
            (await client.post("/prompt", json=body)).raise_for_status()
        deadline = time.monotonic() + 120 + jobs
        while time.monotonic() < deadline:
            queue = (await client.get("/queue")).json()
            if not queue["queue_running"] and not queue["queue_pending"]:
                break
            await asyncio.sleep(0.05)
    return _gaps(await stack.fake_stats(), set(pids))


async def polling_case(stack: Stack, api: Api, jobs: int, steps: int, concurrency: int) -> list[float]:
    await stack.stop_workers()
    await stack.start_workers(1, kind="polling", concurrency=concurrency)
    ids = [await api.create(steps=steps, prompt=f"polling gap {i} {uuid.uuid4().hex[:6]}") for i in range(jobs)]
    await asyncio.gather(*(poll_status(api, gid, until={"SUCCEEDED", "FAILED"}) for gid in ids))
    return _gaps(await stack.fake_stats(), {prompt_id(gid) for gid in ids})


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--step-time", type=float, default=0.005)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--polling-jobs", type=int, default=20)
    args = parser.parse_args()
    jobs, polling_jobs = args.jobs, args.polling_jobs
    if args.quick:
        jobs, polling_jobs = 6, 3
    report = Report(
        "idle_gap",
        {
            "jobs": jobs,
            "polling_jobs": polling_jobs,
            "step_time": args.step_time,
            "steps": args.steps,
            "concurrency": args.concurrency,
        },
    )
    async with running_stack(step_time=args.step_time) as stack:
        api = Api(stack)
        try:
            await stack.start_workers(1, concurrency=args.concurrency)
            limit = latency_row(report, "gap", "limit (posted at once)", await direct_case(stack, jobs, args.steps))
            row = latency_row(report, "gap", "safelight", await safelight_case(stack, api, jobs, args.steps))
            polling = await polling_case(stack, api, polling_jobs, args.steps, args.concurrency)
            p = latency_row(report, "gap", "polling design", polling)
            row["p99_ratio_to_limit"] = ratio(row.get("p99"), limit.get("p99"))
            p["p99_ratio_to_limit"] = ratio(p.get("p99"), limit.get("p99"))
            report.target("idle gap p99 (ms)", row.get("p99"), 5.0)
        finally:
            await api.aclose()
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    run(main())
