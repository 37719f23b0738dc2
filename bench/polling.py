"""Baseline (b), the design many teams ship: a stock arq worker that polls, on Safelight's own components.

`python -m bench.polling` runs an arq `Worker` (arq's default 0.5 s queue poll, no pub/sub wake-up) whose job
submits the workflow, then asks ComfyUI's `/history/{prompt_id}` once a second until the prompt is done,
checking the database for a cancel request on each round. It writes status to PostgreSQL and publishes
nothing: the frontend of this design polls the `generation(id)` query every second (see `poll_status`).
Same settings, database, templates, ComfyUI client and image store as Safelight's worker.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker, func

from comfy.client import ComfyClient
from comfy.errors import ComfyUnavailable
from comfy.templates import build_workflow, load_templates, validate_params
from db import generation_reads, transitions
from db.engine import create_engine, create_session_factory
from db.images import add_image
from db.states import IllegalTransition, Phase, Status
from jobs.enqueue import JOB_FUNCTION
from jobs.keys import Keys
from jobs.storage import ImageStore
from jobs.worker.submit import prompt_id_for
from settings import Settings, load_settings

POLL_S = 1.0
MAX_POLLS = 3600


async def _startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    engine = create_engine(settings, pool_size=max(4, settings.worker_concurrency))
    ctx["engine"] = engine
    ctx["sessions"] = create_session_factory(engine)
    ctx["client"] = ComfyClient(settings.comfyui_urls[0], timeout=settings.comfy_timeout_s)
    ctx["templates"] = load_templates(settings.template_dirs)
    ctx["store"] = ImageStore(settings.images_dir)


async def _shutdown(ctx: dict[str, Any]) -> None:
    await ctx["client"].aclose()
    await ctx["engine"].dispose()


async def generate(ctx: dict[str, Any], generation_id: str) -> None:
    sessions = ctx["sessions"]
    client: ComfyClient = ctx["client"]
    gid = uuid.UUID(generation_id)
    lease = f"polling/{uuid.uuid4().hex[:12]}"
    async with sessions() as session:
        generation = await generation_reads.get_generation(session, generation_id=gid)
        if generation is None or generation.status is not Status.QUEUED:
            return
        try:
            await transitions.transition(
                session,
                generation_id=gid,
                to=Status.RUNNING,
                values={"lease": lease, "phase": Phase.SUBMITTING, "started_at": transitions.now()},
            )
        except IllegalTransition:
            return
        await session.commit()
    template = ctx["templates"][generation.template]
    workflow = build_workflow(
        template, validate_params(template, generation.params), filename_prefix=f"polling/{gid.hex[:12]}"
    )
    pid = prompt_id_for(gid, generation.attempt)
    await client.submit(workflow, prompt_id=pid, client_id="bench-polling")
    entry = None
    cancelled = False
    for _ in range(MAX_POLLS):
        await asyncio.sleep(POLL_S)
        try:
            entry = await client.history(pid)
        except ComfyUnavailable:
            continue  # one failed poll (a kept-alive connection the fake closed, say): ask again next round
        if entry is not None:
            break
        async with sessions() as session:
            row = await generation_reads.get_generation(session, generation_id=gid)
        if row is not None and row.status is Status.CANCELLING and not cancelled:
            cancelled = True
            position = (await client.queue()).position(pid)
            if position is not None and position > 0:
                await client.delete_from_queue([pid])
            elif position == 0:
                await client.interrupt(pid)
    if entry is not None and entry.succeeded:
        for index, image in enumerate(i for i in entry.images if i.type == "output"):
            stored = await ctx["store"].put(await client.view(image))
            async with sessions() as session:
                await add_image(
                    session,
                    generation_id=gid,
                    index=index,
                    content_hash=stored.content_hash,
                    mime=stored.mime,
                    width=stored.width,
                    height=stored.height,
                    seed=generation.seed,
                    size_bytes=stored.size_bytes,
                    node_id="",
                )
                await session.commit()
        outcome = Status.SUCCEEDED
    else:
        outcome = Status.CANCELLED if cancelled else Status.FAILED
    async with sessions() as session:
        try:
            await transitions.transition(session, generation_id=gid, to=outcome, lease=lease, values={"percent": 100.0})
        except IllegalTransition:
            await session.rollback()
            await transitions.transition(session, generation_id=gid, to=Status.CANCELLED, lease=lease)
        await session.commit()


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level)
    worker = Worker(
        functions=[func(generate, name=JOB_FUNCTION, max_tries=1)],
        redis_settings=RedisSettings.from_dsn(settings.required_redis_url),
        queue_name=Keys(settings.namespace).queue,
        max_jobs=settings.worker_concurrency,
        job_timeout=settings.job_timeout_s,
        keep_result=0,
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings},
    )
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        worker.run()
    finally:
        loop.close()


async def poll_status(
    api: Any, generation_id: str, *, until: set[str], interval_s: float = POLL_S, max_polls: int = 3600
) -> tuple[float, dict[str, Any]]:
    """The polling frontend: query the generation every second; (wall time seen, data) once in `until`."""
    import time

    from bench.stack import STATUS

    data: dict[str, Any] = {}
    for _ in range(max_polls):
        data = (await api.execute(STATUS, {"id": generation_id}))["generation"]
        if data["status"] in until:
            return time.time(), data
        await asyncio.sleep(interval_s)
    raise TimeoutError(f"{generation_id} never reached {until}: {data}")


if __name__ == "__main__":
    main()
