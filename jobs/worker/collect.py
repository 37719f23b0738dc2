"""Collecting: the prompt's verdict from the backend, and on success its outputs stored and recorded.

Each output of every kind (images, animations, videos, audio; texts come inline) is fetched from the
backend (`/view`), stored content-addressed with its real mime type and measures, and recorded as an
image row with its IMAGE event; the last one also moves the generation to SUCCEEDED, in the same
statement, so no cancel can come between them. A re-run of the job finds rows recorded before and skips
them. Results are the saved files (type "output") and texts; temp previews are not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from comfy.client import ComfyClient, HistoryEntry
from comfy.errors import ComfyResponseTooLarge
from comfy.events import OutputFile
from db import transitions
from db.engine import single_statement
from db.payloads import ImagePayload
from db.states import Phase, Status
from jobs.bus import publish_change, publish_changes
from jobs.media import OutputKind
from jobs.storage import OutputTooLarge
from jobs.worker.outcomes import Cancelled, Permanent, Transient, failure_of

if TYPE_CHECKING:
    from jobs.worker.run import GenerationRun

__all__ = ["collect", "conclude", "is_result", "store_output"]


async def conclude(
    run: GenerationRun, client: ComfyClient, entry: HistoryEntry, *, outputs: list[OutputFile] | None
) -> None:
    """The backend's history of the prompt decides: collect on success, else raise how it ended."""
    if entry.succeeded:
        await collect(run, client, outputs)
        return
    if entry.interrupted:
        if run.cancel_requested.is_set():
            raise Cancelled
        raise Transient("the prompt was interrupted on the backend")
    failure = entry.error
    if failure is not None:
        raise failure_of(failure)
    if run.cancel_requested.is_set():
        raise Cancelled
    raise Transient(f"history of {run.prompt_id} has no verdict ({entry.status_str})")


def is_result(output: OutputFile) -> bool:
    """A saved file (type "output") or a text; a temp preview (PreviewImage's) is not a result."""
    return output.kind == "text" or output.type == "output"


async def collect(run: GenerationRun, client: ComfyClient, outputs: list[OutputFile] | None) -> None:
    """Store and record every output (`outputs` as the socket announced them; None or empty: from the
    backend's history), then SUCCEEDED."""
    if not outputs:
        entry = await client.history(run.prompt_id)
        outputs = [output for output in (entry.outputs if entry else ()) if is_result(output)]
    run.relay.stop_previews()
    await run.relay.progress(phase=Phase.SAVING)
    last = len(outputs) - 1
    for index, output in enumerate(outputs):
        payload = await store_output(run, client, output, index)
        final = index == last
        async with single_statement(run.runtime.sessions) as session:
            # The image row, its event and, for the last one, SUCCEEDED: one statement that
            # locks the generation first, so no cancel can come between them.
            changes = await run.guarded(
                transitions.record_image(
                    session,
                    generation_id=run.id,
                    lease=run.lease,
                    image={**payload.columns(), "node_id": outputs[index].node},
                    payload=payload.encode(),
                    then=Status.SUCCEEDED if final else None,
                    values={"percent": 100.0} if final else None,
                )
            )
        if not changes:
            continue  # recorded by an earlier run of this job
        run.relay.seq = changes[0].event.seq
        if final:
            await publish_changes(run.runtime.redis, run.runtime.keys, changes)
            return
        await publish_change(run.runtime.redis, run.runtime.keys, changes[0])
    await run.finish(Status.SUCCEEDED, {"percent": 100.0})


async def store_output(run: GenerationRun, client: ComfyClient, output: OutputFile, index: int) -> ImagePayload:
    """Fetch one output from the backend (a text comes inline) and store it: what its row and IMAGE event say.

    Each output of a batch carries the generation's seed and its batch index: in ComfyUI a batch shares
    one seed, and the index picks the image out of it again (LatentFromBatch). An output past
    SAFELIGHT_MAX_OUTPUT_BYTES, or bytes of an image type that do not open, fail the generation: another
    attempt would fetch the same file.
    """
    where = f"output {output.filename or output.kind} of node {output.node}"
    max_bytes = run.runtime.settings.max_output_bytes
    if output.kind == "text":
        data = (output.text or "").encode("utf-8")
    else:
        try:
            data = await client.view(output, max_bytes=max_bytes)  # refused before it is read whole
        except ComfyResponseTooLarge as exc:
            raise Permanent("OUTPUT_TOO_LARGE", f"{where}: {exc}", node=output.node) from None
    try:
        stored = await run.runtime.store.put_output(data, declared_kind=OutputKind(output.kind), max_bytes=max_bytes)
    except OutputTooLarge as exc:
        raise Permanent("OUTPUT_TOO_LARGE", f"{where}: {exc}", node=output.node) from None
    except ValueError as exc:
        raise Permanent("OUTPUT_UNREADABLE", f"{where}: {exc}", node=output.node) from None
    return ImagePayload(
        index=index,
        content_hash=stored.content_hash,
        width=stored.width,
        height=stored.height,
        seed=run.generation.seed,
        size_bytes=stored.size_bytes,
        mime=stored.mime,
        kind=stored.kind.value,
        batch_index=output.batch_index,
        duration_s=stored.duration_s,
        frames=stored.frames,
        filename=output.filename[:200],
    )
