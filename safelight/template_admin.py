"""`safelight template add|list`: templates saved straight to the database, live in every API at once.

The same path as the `saveTemplate` mutation (comfy.template_upload, jobs.templates): the workflow
is checked against the configured backends' `/object_info` when one answers; otherwise an
API-format workflow is saved unchecked, and the command says so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from comfy.catalog import merge_object_info
from comfy.client import ComfyClient
from comfy.errors import ComfyError
from comfy.template_upload import template_from_upload
from comfy.templates import ParamValidationError
from db.engine import create_engine, create_session_factory
from db.templates import TemplateNameTaken
from jobs.keys import Keys
from jobs.templates import TemplateRegistry, sync_template_files
from settings import Settings

__all__ = ["add_template", "list_templates"]

_MAX_FILE_BYTES = 16 * 1024 * 1024


def _read_json(path: Path, what: str) -> Any:
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise SystemExit(f"safelight: {what} {path} is larger than {_MAX_FILE_BYTES} bytes")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SystemExit(f"safelight: cannot read {what} {path}: {exc}") from None


async def _object_info(settings: Settings) -> Mapping[str, Any] | None:
    infos: list[Mapping[str, Any]] = []
    for url in settings.comfyui_urls:
        async with ComfyClient(url, timeout=min(settings.comfy_timeout_s, 10.0)) as client:
            try:
                infos.append((await client.object_info()).object_info)
            except ComfyError:
                continue
    return merge_object_info(infos) if infos else None


def add_template(
    settings: Settings,
    *,
    path: Path,
    name: str | None = None,
    params_path: Path | None = None,
    title: str | None = None,
    description: str | None = None,
) -> tuple[int, list[str]]:
    """`(exit code, lines to print)`."""
    doc = _read_json(path, "workflow")
    params = None if params_path is None else _read_json(params_path, "parameters")
    if isinstance(params, Mapping):  # a whole *.params.json: its title and description too
        title = title or params.get("title")
        description = description or params.get("description")
        params = params.get("params")
    name = name or path.name.removesuffix(".json")

    async def run() -> tuple[int, list[str]]:
        lines: list[str] = []
        object_info = await _object_info(settings)
        if object_info is None:
            lines.append("no ComfyUI backend answered: saved without the catalogue check")
        try:
            template, source_format = template_from_upload(
                name=name, title=title, description=description, doc=doc, params=params, object_info=object_info
            )
        except ParamValidationError as exc:
            return 1, [*lines, *(f"{e.field}: {e.message}" for e in exc.errors)]
        engine = create_engine(settings)
        redis = Redis.from_url(settings.required_redis_url)
        try:
            sessions = create_session_factory(engine)
            await sync_template_files(sessions, settings.template_dirs)  # file templates keep their names
            registry = TemplateRegistry(sessions=sessions, redis=redis, keys=Keys(settings.namespace))
            try:
                saved, created = await registry.save(template=template, source_format=source_format, created_by=None)
            except TemplateNameTaken as exc:
                return 1, [*lines, str(exc)]
        finally:
            await redis.aclose()
            await engine.dispose()
        state = f"version {saved.version}" if created else f"unchanged (version {saved.version})"
        params_text = ", ".join(f"{p.name}:{p.type}" for p in template.params) or "no parameters"
        lines.append(f"template {saved.name!r} ({source_format.upper()} format): {state}; {params_text}")
        return 0, lines

    return asyncio.run(run())


def list_templates(settings: Settings) -> list[str]:
    async def run() -> list[str]:
        engine = create_engine(settings)
        redis = Redis.from_url(settings.required_redis_url)
        try:
            registry = TemplateRegistry(
                sessions=create_session_factory(engine), redis=redis, keys=Keys(settings.namespace)
            )
            current = await registry.current()
        finally:
            await redis.aclose()
            await engine.dispose()
        return [
            f"{t.name}\tv{t.version}\t{t.source}\t{len(t.template.params)} params\t{t.template.title}"
            for t in current.values()
        ]

    return asyncio.run(run())
