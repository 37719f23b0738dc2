"""End-to-end throughput with an instant fake ComfyUI (10 progress events per job), one and two workers.

    .venv/bin/python -m bench.throughput [--quick] [--json PATH] [--jobs N] [--concurrency C]

Clients create `--jobs` generations through the API (16 at a time, each on a lean keep-alive connection as
in bench.submit: httpx cost ~1 ms of the shared cores per request) while one `myGenerationEvents`
subscription counts terminal events; throughput is jobs / (first mutation sent → last terminal event
received). Each generation goes through everything a real one does: validation, PostgreSQL, arq, the
fake's queue, 10 relayed progress messages, a 64x64 PNG fetched with `/view` and stored, events.
Every row also gives the machine's busy CPU (every process, PostgreSQL, Redis and the kernel included)
per generation, and the rate that allows on this machine's cores (`ceiling_per_s`).
Side by side, in the same run:
- limit: a client posting the same workflows straight to the fake and waiting for `execution_success`;
- safelight: 1 and 2 worker processes (`worker_concurrency` = C each);
- polling: the polling design, one worker with the same concurrency (1 s `/history` poll).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import websockets

from bench.polling import poll_status
from bench.stack import (
    MY_EVENTS,
    TEMPLATES,
    Api,
    Client,
    MachineCpu,
    Report,
    Stack,
    Subscription,
    base_parser,
    ratio,
    run,
    running_stack,
)

STEPS = 10
_SUBMITTERS = 16


async def _create_all(clients: list[Client], count: int, tag: str) -> list[str]:
    """`count` generations, created by the clients side by side (one request in flight on each)."""
    ids: list[str] = []
    counter = iter(range(count))

    async def submitter(client: Client) -> None:
        for i in counter:
            _, gid = await client.create(steps=STEPS, prompt=f"{tag} {i}")
            ids.append(gid)

    await asyncio.gather(*(submitter(client) for client in clients))
    return ids


async def safelight_case(
    stack: Stack, clients: list[Client], jobs: int, workers: int, concurrency: int
) -> dict[str, float]:
    await stack.stop_workers()
    await stack.start_workers(workers, concurrency=concurrency)
    async with Subscription.open(stack, MY_EVENTS) as sub:
        terminal: dict[str, str] = {}
        started = time.time()
        machine = MachineCpu()
        clients_before = time.process_time()
        cpu_before = {p.name: p.cpu_seconds() for p in [stack.api, *stack.workers, stack.fake] if p is not None}
        creating = asyncio.create_task(_create_all(clients, jobs, f"throughput {workers}w {uuid.uuid4().hex[:6]}"))
        created: list[float] = []
        creating.add_done_callback(lambda _: created.append(time.time()))
        last = started
        deadline = time.monotonic() + 60 + jobs * 0.5
        while len(terminal) < jobs and time.monotonic() < deadline:
            received, data = await sub.next(60)
            if data is None:
                break
            event = data["myGenerationEvents"]
            if event["terminal"]:
                terminal[event["generationId"]] = event["status"]
                last = received
        ids = await creating
        created_at = created[0] if created else time.time()
        cpu = {
            name: round(p.cpu_seconds() - cpu_before[name], 1)
            for p in [stack.api, *stack.workers, stack.fake]
            if p is not None and (name := p.name) in cpu_before
        }
        cpu["clients (this process)"] = round(time.process_time() - clients_before, 1)
        busy = machine.figures(jobs)
    done = [gid for gid in ids if terminal.get(gid) == "SUCCEEDED"]
    if len(done) != jobs:
        raise RuntimeError(f"{len(done)} of {jobs} succeeded: {set(terminal.values())}")
    return {
        "per_s": jobs / (last - started),
        "seconds": last - started,
        "mutations_per_s": jobs / (created_at - started),
        **busy,
        "cpu": cpu,  # type: ignore[dict-item]
    }


async def direct_case(stack: Stack, jobs: int) -> dict[str, float]:
    """Baseline (a): the fake's own pace for the same workflows, posted straight to it."""
    from comfy.fake.catalog import CHECKPOINTS
    from comfy.templates import build_workflow, load_templates, validate_params

    template = load_templates([TEMPLATES])["bench_txt2img"]
    sid = f"direct-{uuid.uuid4().hex[:6]}"
    ids = [str(uuid.uuid4()) for _ in range(jobs)]
    workflows = [
        build_workflow(
            template,
            validate_params(
                template,
                {
                    "prompt": f"direct {pid}",
                    "width": 64,
                    "height": 64,
                    "seed": 1,
                    "sampler_steps": STEPS,
                    "checkpoint": CHECKPOINTS[0],
                },
            ),
            filename_prefix="direct",
        )
        for pid in ids
    ]
    succeeded: set[str] = set()
    async with (
        websockets.connect(f"{stack.fake_ws_url}?clientId={sid}", max_size=None, compression=None) as ws,
        httpx.AsyncClient(base_url=stack.fake_url, timeout=60) as client,
    ):
        started = time.time()
        machine = MachineCpu()
        queue = iter(zip(ids, workflows, strict=True))

        async def poster() -> None:
            for pid, workflow in queue:
                body = {"prompt": workflow, "client_id": sid, "prompt_id": pid}
                (await client.post("/prompt", json=body)).raise_for_status()

        posting = asyncio.gather(*(poster() for _ in range(_SUBMITTERS)))
        last = started
        deadline = time.monotonic() + 60 + jobs * 0.5
        while len(succeeded) < jobs and time.monotonic() < deadline:
            raw = await asyncio.wait_for(ws.recv(), 60)
            if isinstance(raw, bytes):
                continue
            message = json.loads(raw)
            if message["type"] == "execution_success":
                succeeded.add(message["data"]["prompt_id"])
                last = time.time()
        await posting
        busy = machine.figures(jobs)
    return {"per_s": len(succeeded) / (last - started), "seconds": last - started, **busy}


async def polling_case(stack: Stack, api: Api, clients: list[Client], jobs: int, concurrency: int) -> dict[str, float]:
    await stack.stop_workers()
    await stack.start_workers(1, kind="polling", concurrency=concurrency)
    started = time.time()
    ids = await _create_all(clients, jobs, f"polling {uuid.uuid4().hex[:6]}")
    seen = await asyncio.gather(*(poll_status(api, gid, until={"SUCCEEDED", "FAILED"}) for gid in ids))
    last = max(t for t, _ in seen)
    return {"per_s": jobs / (last - started), "seconds": last - started}


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--jobs", type=int, default=2000, help="generations per Safelight case")
    parser.add_argument("--polling-jobs", type=int, default=200, help="generations for the polling design")
    parser.add_argument("--concurrency", type=int, default=32, help="worker_concurrency of each worker")
    args = parser.parse_args()
    jobs, polling_jobs = args.jobs, args.polling_jobs
    if args.quick:
        jobs, polling_jobs = 20, 8
    report = Report(
        "throughput",
        {"jobs": jobs, "polling_jobs": polling_jobs, "concurrency": args.concurrency, "steps": STEPS},
    )
    async with running_stack(step_time=0.0) as stack:
        api = Api(stack, max_connections=_SUBMITTERS)
        clients = [Client(stack) for _ in range(_SUBMITTERS)]
        try:
            await stack.start_workers(1)
            await _create_all(clients, _SUBMITTERS, "warm-up")
            limit = await direct_case(stack, jobs)
            report.add("instant fake", "limit (direct to fake)", jobs=jobs, **limit)
            best = 0.0
            for workers in (1, 2):
                result = await safelight_case(stack, clients, jobs, workers, args.concurrency)
                best = max(best, result["per_s"])
                report.add(
                    "instant fake",
                    f"safelight, {workers} worker(s)",
                    jobs=jobs,
                    **result,
                    ratio_to_limit=ratio(result["per_s"], limit["per_s"]),
                )
            polling = await polling_case(stack, api, clients, polling_jobs, args.concurrency)
            report.add(
                "instant fake",
                "polling design, 1 worker",
                jobs=polling_jobs,
                **polling,
                ratio_to_limit=ratio(polling["per_s"], limit["per_s"]),
            )
            report.params["safelight_over_polling"] = ratio(best, polling["per_s"])
            report.target("generations/s end to end", best, 500.0, at_least=True)
        finally:
            await api.aclose()
            for client in clients:
                await client.aclose()
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    run(main())
