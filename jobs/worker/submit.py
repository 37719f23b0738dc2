"""Submitting: the workflow built from the stored parameters, sent to a backend as `POST /prompt`.

Never twice: the prompt id is derived from the generation and attempt, and where it goes (backend and
prompt id) is recorded on the row before it goes there, so a re-run after a crash asks that backend's
`/history` and `/queue` first (jobs/worker/run.py) instead of running it again.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from comfy.client import ComfyClient, QueueItem
from comfy.errors import ComfyUnavailable, ComfyUnreachable, PromptValidationError
from comfy.templates import (
    RAW_TEMPLATE,
    Limits,
    ParamValidationError,
    Template,
    build_workflow,
    check_raw_workflow,
    input_params,
    validate_params,
)
from db import transitions
from db.engine import single_statement
from db.states import Phase
from jobs.backends import Backend
from jobs.worker.deliver import deliver, input_files, rename_input
from jobs.worker.outcomes import Permanent

if TYPE_CHECKING:
    from jobs.worker.run import GenerationRun

__all__ = ["deliver_inputs", "prepare_workflow", "prompt_id_for", "submit", "take_back", "template_for"]

_PROMPT_NAMESPACE = uuid.UUID("5a6e1f6b-2c1d-4f57-9a43-7d0c2b9e3a11")


def prompt_id_for(generation_id: uuid.UUID, attempt: int) -> str:
    """The ComfyUI prompt id of an attempt: the same on every run of its job, so a re-run finds it."""
    return str(uuid.uuid5(_PROMPT_NAMESPACE, f"{generation_id}:{attempt}"))


async def template_for(run: GenerationRun) -> Template:
    """The template version the generation was created with (never the current one, which an admin
    may have changed since); rows older than versioned templates name only the template."""
    generation = run.generation
    if generation.template_version_id is not None:
        found = await run.runtime.templates.version(generation.template_version_id)
    else:
        found = await run.runtime.templates.get(generation.template)
    if found is None:
        raise Permanent("UNKNOWN_TEMPLATE", f"template {generation.template!r} is not installed")
    return found.template


async def prepare_workflow(run: GenerationRun) -> dict[str, Any]:
    """The API-format workflow, rebuilt from the stored parameters by the shared validation; its
    image/mask inputs (`run.inputs`) named as every backend gets them (jobs/worker/deliver.py)."""
    generation = run.generation
    prefix = f"safelight/{run.id.hex[:12]}"
    settings = run.runtime.settings
    try:
        if generation.template == RAW_TEMPLATE:
            raw = generation.params.get("workflow")
            return check_raw_workflow(raw, allowed_classes=settings.raw_node_classes, filename_prefix=prefix)
        template = await template_for(run)
        params = validate_params(template, generation.params, limits=Limits.from_settings(settings))
    except ParamValidationError as exc:
        raise Permanent("INVALID_PARAMETERS", str(exc)) from None
    files = await input_files(run.runtime.sessions, input_params(template, params))
    run.inputs = tuple(files.values())
    names = {input_id: file.name for input_id, file in files.items()}
    return build_workflow(template, params, filename_prefix=prefix, input_files=names)


async def deliver_inputs(run: GenerationRun, backend: Backend) -> None:
    """Put the files the workflow reads (uploaded image and mask inputs) on `backend`, just before
    `POST /prompt`: each backend needs its own copy, and a restarted one may have lost it.

    The one place input delivery happens (jobs/worker/deliver.py); workflows without inputs have
    nothing to deliver.
    """
    if not run.inputs:
        return
    stored = await deliver(backend.client, run.runtime.store, run.inputs)
    for file in run.inputs:
        if stored[file.input_id] != file.name:  # ComfyUI chose another name (a subfolder): the loaders read that
            rename_input(run.workflow, file.name, stored[file.input_id])


async def submit(run: GenerationRun, backend: Backend) -> None:
    """Record where the prompt goes, deliver its inputs, `POST /prompt`; BACKEND_QUEUE once accepted."""
    if backend is not run.backend or run.generation.prompt_id != run.prompt_id:
        # Record where the prompt goes before it goes there: a re-run after a crash looks here.
        async with single_statement(run.runtime.sessions) as session:
            ok = await transitions.update_progress(
                session,
                generation_id=run.id,
                lease=run.lease,
                values={"backend_url": backend.url, "prompt_id": run.prompt_id},
            )
        if not ok:
            await run.check_still_ours()
    run.backend = backend
    await deliver_inputs(run, backend)
    run.maybe_submitted = True  # from here on, an unanswered submit may have been accepted
    try:
        await backend.client.submit(
            run.workflow, prompt_id=run.prompt_id, client_id=backend.socket.client_id, number=run.queue_number
        )
    except PromptValidationError as exc:
        first = exc.first
        node, input_name = (None, None) if first is None else (first.node_label, first.input_name)
        raise Permanent("COMFY_VALIDATION", str(exc), node=node, input=input_name) from None
    except ComfyUnreachable as exc:
        if not exc.sent:
            run.maybe_submitted = False  # the request never left: another backend may take it
        raise  # recorded by the run, which waits for a backend
    except ComfyUnavailable:
        run.runtime.backends.record(backend, ok=False)
        raise
    run.answered(backend)
    run.runtime.backends.record(backend, ok=True)
    backend.last_checkpoint = run.generation.params.get("checkpoint")
    run.submitted = True
    run.relay.queue_progress(phase=Phase.BACKEND_QUEUE)  # sent with what follows it


async def take_back(run: GenerationRun, client: ComfyClient, item: QueueItem) -> tuple[QueueItem | None, int | None]:
    """A pending prompt sent under another (dead) worker's client id: take it out of the queue, to
    submit it again under ours at the same place (`number`). If it started meanwhile, it stays."""
    await client.delete_from_queue([run.prompt_id])
    queue = await client.queue()
    again = queue.item(run.prompt_id)
    if again is not None:
        return again, queue.position(run.prompt_id)
    if await client.history(run.prompt_id) is not None:
        return item, 0  # it ran in between: follow it (its history concludes it)
    run.queue_number = item.number
    return None, None
