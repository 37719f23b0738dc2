"""Delivering inputs: the uploaded images and masks a workflow reads, put on the backend that runs it.

ComfyUI shares no filesystem with Safelight: before `POST /prompt` each input goes to the chosen backend
with `POST /upload/image`, under a name made of its content hash (`safelight-<hash[:32]>.<ext>`), so the
same file has the same name on every backend and for every user. A backend that already holds the name
(`HEAD /view?type=input`) is not sent it again; one that lost it (a restart with a fresh input
directory) gets it again on the next job that needs it. The loader nodes get the name ComfyUI answered.

Failures: an input whose row is gone (deleted with its owner) fails the generation for good; an upload
that fails is the backend's trouble, and the attempt is retried like any other backend failure.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.client import ComfyClient
from comfy.errors import ComfyError, ComfyUnavailable
from db.engine import single_statement
from db.inputs import inputs_by_ids
from jobs.storage import ImageStore
from jobs.worker.outcomes import Permanent, Transient

__all__ = ["InputFile", "comfy_file_name", "deliver", "input_files", "rename_input"]

log = logging.getLogger(__name__)

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif", "image/bmp": "bmp"}


def comfy_file_name(content_hash: str, mime: str) -> str:
    """An input's file name on every ComfyUI backend: the same content has the same name everywhere."""
    return f"safelight-{content_hash[:32]}.{_EXTENSIONS.get(mime, 'png')}"


@dataclass(frozen=True, slots=True)
class InputFile:
    input_id: str
    content_hash: str
    mime: str

    @property
    def name(self) -> str:
        return comfy_file_name(self.content_hash, self.mime)


async def input_files(sessions: async_sessionmaker[AsyncSession], by_param: Mapping[str, str]) -> dict[str, InputFile]:
    """Input id → its stored file, for every input the parameters name (`by_param`: parameter name →
    input id, comfy.templates.input_params); Permanent if one is gone.

    Whose input it is was checked when the generation was created (jobs/service/generations.py).
    """
    if not by_param:
        return {}
    ids = {uuid.UUID(value) for value in by_param.values()}
    async with single_statement(sessions) as session:
        rows = await inputs_by_ids(session, ids=ids)
    files: dict[str, InputFile] = {}
    for param, value in by_param.items():
        row = rows.get(uuid.UUID(value))
        if row is None:
            raise Permanent("INPUT_MISSING", f"parameter {param!r}: input {value} no longer exists", input=param)
        files[value] = InputFile(input_id=value, content_hash=row.content_hash, mime=row.mime)
    return files


async def deliver(client: ComfyClient, store: ImageStore, files: Sequence[InputFile]) -> dict[str, str]:
    """Put each file on the backend unless it holds it already; input id → the name the workflow reads.

    Transient when the backend refuses a file (the attempt is retried); ComfyUnavailable (unreachable,
    5xx) passes through and is handled as a failed submit is. Permanent when the stored bytes are gone.
    """
    names: dict[str, str] = {}
    for file in files:
        name = file.name
        try:
            if not await client.has_input(name):
                path = store.path_for(file.content_hash)
                try:
                    data = await asyncio.to_thread(path.read_bytes)
                except FileNotFoundError:
                    raise Permanent(
                        "INPUT_MISSING", f"the stored file of input {file.input_id} is gone; upload it again"
                    ) from None
                name = await client.upload_image(name, data, overwrite=True, max_bytes=max(len(data), 1))
                log.info("input %s uploaded to %s as %s", file.input_id, client.display_url, name)
        except ComfyUnavailable:
            raise  # the backend is down or failing: the run records it and retries, as for a submit
        except ComfyError as exc:
            raise Transient(f"could not upload input {file.input_id} to the backend: {exc}") from None
        names[file.input_id] = name
    return names


def rename_input(workflow: dict[str, Any], name: str, stored_as: str) -> None:
    """Point every node input that reads `name` at `stored_as` (the name a backend answered the upload with).

    Content-hash names are ours alone, so an input value equal to one can only be that file.
    """
    for node in workflow.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if isinstance(inputs, dict):
            for key, value in inputs.items():
                if value == name:
                    inputs[key] = stored_as
