"""ComfyUI's HTTP API as recorded: same paths, status codes, content types and JSON bodies.

JSON is serialised like aiohttp's `json_response` (default `json.dumps` separators) and typed
`application/json; charset=utf-8`; bodiless answers carry no content type, as in the recordings.
Where the builds differ (`FakeConfig.dialect`, see tests/recordings/upstream/README.md) each route answers
as the chosen one: `/features`, `/system_stats`'s values, `/object_info`'s keys and `/queue`'s entries.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import platform
import posixpath
import sys
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from comfy.fake.catalog import MODEL_FILES, NODES, node_info, object_info
from comfy.fake.inputs import UPLOAD_TYPES, split_annotation, view_path
from comfy.fake.state import FakeComfy
from comfy.fake.stats import Instant

UPSTREAM_FEATURES: dict[str, Any] = {"supports_preview_metadata": True, "max_upload_size": 104857600}
PACKAGING_FEATURES: dict[str, Any] = {**UPSTREAM_FEATURES, "extension": {"manager": {"supports_v4": True}}}
# (os, comfyui_version, required_frontend_version, installed and required templates version, pytorch_version)
_UPSTREAM_SYSTEM = (os.name, "0.3.64", "1.27.10", "0.1.95", "0.1.95", "2.14.1+cu130")
_PACKAGING_SYSTEM = (sys.platform, "0.12.1", "1.58.1", "0.11.97", "0.7.51", "2.13.0+cpu")
# `/models`: upstream's folder names (recording 19).
_MODEL_FOLDERS = [
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision", "style_models",
    "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models", "custom_nodes",
    "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders",
]  # fmt: skip


def server_features(upstream: bool) -> dict[str, Any]:
    """`GET /features`, and the `feature_flags` reply on the websocket."""
    return UPSTREAM_FEATURES if upstream else PACKAGING_FEATURES


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(json.dumps(data), status_code=status_code, media_type="application/json; charset=utf-8")


def server_error() -> Response:
    return PlainTextResponse("500 Internal Server Error\n\nServer got itself in trouble", status_code=500)


def _fake(request: Request) -> FakeComfy:
    fake: FakeComfy = request.app.state.fake
    return fake


def _upstream(request: Request) -> bool:
    return _fake(request).config.dialect == "upstream"


def _memory() -> tuple[int, int]:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0, 0


async def system_stats(request: Request) -> Response:
    total, free = _memory()
    system, version, frontend, installed, required, pytorch = (
        _UPSTREAM_SYSTEM if _upstream(request) else _PACKAGING_SYSTEM
    )
    return json_response(
        {
            "system": {
                "os": system,
                "ram_total": total,
                "ram_free": free,
                "comfyui_version": version,
                "required_frontend_version": frontend,
                "installed_templates_version": installed,
                "required_templates_version": required,
                "python_version": sys.version,
                "pytorch_version": pytorch,
                "embedded_python": False,
                "argv": ["main.py", "--cpu", "--fake", platform.node()],
            },
            "devices": [
                {
                    "name": "cpu",
                    "type": "cpu",
                    "index": None,
                    "vram_total": total,
                    "vram_free": free,
                    "torch_vram_total": total,
                    "torch_vram_free": free,
                }
            ],
        }
    )


async def get_object_info(request: Request) -> Response:
    return json_response(object_info(upstream=_upstream(request), live=_fake(request).live_choices()))


async def get_node_info(request: Request) -> Response:
    name = request.path_params["node_class"]
    if name not in NODES:
        return json_response({})
    return json_response({name: node_info(name, upstream=_upstream(request), live=_fake(request).live_choices())})


async def features(request: Request) -> Response:
    return json_response(server_features(_upstream(request)))


async def models(request: Request) -> Response:
    return json_response(_MODEL_FOLDERS)


async def models_in(request: Request) -> Response:
    """`GET /models/{folder}`: the files the fake's loaders offer; 404 for a folder ComfyUI does not know."""
    folder = request.path_params["folder"]
    if folder not in _MODEL_FOLDERS:
        return Response(status_code=404)
    if folder == "upscale_models":
        return json_response(list(_fake(request).config.upscale_models))
    return json_response(MODEL_FILES.get(folder, []))


async def extensions(request: Request) -> Response:
    return json_response([])


async def embeddings(request: Request) -> Response:
    return json_response([])


async def get_prompt(request: Request) -> Response:
    return json_response(_fake(request).status_data()["status"])


async def post_prompt(request: Request) -> Response:
    arrived = Instant.now()
    fake = _fake(request)
    fake.stats.submits += 1
    if fake.config.accept_delay_s > 0:
        await asyncio.sleep(fake.config.accept_delay_s)
    if fake.config.submit_http_500 > 0:
        fake.config.submit_http_500 -= 1
        fake.stats.record("submit", arrived, prompt_id=None, status=500, injected=True)
        return server_error()
    try:
        body = json.loads(await request.body())
        if not isinstance(body, dict):
            raise TypeError("the body must be a JSON object")
        status, answer = fake.submit(body)
    except Exception:
        fake.stats.record("submit", arrived, prompt_id=None, status=500)
        return server_error()
    fake.stats.record("submit", arrived, prompt_id=answer.get("prompt_id"), status=status)
    return json_response(answer, status)


async def _json_or_empty(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def post_interrupt(request: Request) -> Response:
    arrived = Instant.now()
    fake = _fake(request)
    fake.stats.interrupts += 1
    prompt_id = (await _json_or_empty(request)).get("prompt_id")
    hit = fake.executor.interrupt(str(prompt_id) if prompt_id else None)
    fake.stats.record("interrupt", arrived, prompt_id=prompt_id, interrupted=hit)
    return Response(status_code=200)


def _queue_entries(fake: FakeComfy) -> dict[str, list[Any]]:
    running = [] if fake.queue.running is None else [fake.queue.running]
    pending = fake.queue.pending()
    if fake.config.queue_array_form or fake.config.dialect == "upstream":
        return {
            "queue_running": [item.as_array() for item in running],
            "queue_pending": [item.as_array() for item in pending],
        }
    return {
        "queue_running": [item.as_object() for item in running],
        "queue_pending": [item.as_object() for item in pending],
    }


async def get_queue(request: Request) -> Response:
    return json_response(_queue_entries(_fake(request)))


async def post_queue(request: Request) -> Response:
    arrived = Instant.now()
    fake = _fake(request)
    try:
        body = json.loads(await request.body())
    except ValueError:
        return server_error()
    if not isinstance(body, dict):
        return server_error()
    if body.get("clear"):
        fake.stats.record("clear", arrived)
        fake.queue.wipe()
    if "delete" in body:
        fake.stats.deletes += 1
        ids = [str(prompt_id) for prompt_id in body["delete"]]
        deleted = [prompt_id for prompt_id in ids if fake.queue.delete(prompt_id)]
        fake.stats.record("delete", arrived, prompt_ids=ids, deleted=deleted)
    return Response(status_code=200)


async def get_history(request: Request) -> Response:
    raw = request.query_params.get("max_items")
    max_items = int(raw) if raw is not None and raw.lstrip("-").isdigit() else None
    return json_response(_fake(request).queue.history_view(max_items))


async def get_history_item(request: Request) -> Response:
    prompt_id = request.path_params["prompt_id"]
    entry = _fake(request).queue.history.get(prompt_id)
    return json_response({} if entry is None else {prompt_id: entry})


async def post_history(request: Request) -> Response:
    fake = _fake(request)
    body = await _json_or_empty(request)
    if body.get("clear"):
        fake.queue.history.clear()
    for prompt_id in body.get("delete", []):
        fake.queue.history.pop(str(prompt_id), None)
    return Response(status_code=200)


_CONTENT_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif",
    ".bmp": "image/bmp", ".flac": "audio/flac", ".wav": "audio/x-wav", ".mp3": "audio/mpeg",
    ".mp4": "video/mp4", ".webm": "video/webm", ".txt": "text/plain",
}  # fmt: skip
"""What `mimetypes.guess_type` answers for them on a Linux host (upstream's `/view` asks it)."""


def content_type(filename: str) -> str:
    suffix = posixpath.splitext(filename)[1].lower()
    if suffix in {".html", ".htm", ".js", ".css"}:
        return "application/octet-stream"  # upstream forces these to download
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"


async def view(request: Request) -> Response:
    """Upstream's `view_image` without `preview`/`channel` conversions: uploads (any type) and outputs."""
    params = request.query_params
    if "filename" not in params:
        return Response(status_code=404)
    filename, kind = split_annotation(params["filename"], params.get("type", "output"))
    if not filename or filename[0] == "/" or ".." in filename or kind not in UPLOAD_TYPES:
        return Response(status_code=400)
    path = view_path(kind, params.get("subfolder"), filename)
    if path is None:
        return Response(status_code=403)
    fake = _fake(request)
    uploaded = fake.inputs.get(kind, path)
    if uploaded is not None:
        data: bytes | None = uploaded.data
    else:
        subfolder, name = posixpath.split(path)
        data = await fake.store.read(kind, subfolder, name)
    if data is None:
        return Response(status_code=404)
    name = posixpath.basename(path)
    return Response(data, media_type=content_type(name), headers={"Content-Disposition": f'filename="{name}"'})


ROUTES = [
    # The two every prompt uses come first: Starlette tries the routes in order.
    Route("/prompt", post_prompt, methods=["POST"]),
    Route("/view", view, methods=["GET"]),
    Route("/system_stats", system_stats, methods=["GET"]),
    Route("/object_info", get_object_info, methods=["GET"]),
    Route("/object_info/{node_class}", get_node_info, methods=["GET"]),
    Route("/features", features, methods=["GET"]),
    Route("/embeddings", embeddings, methods=["GET"]),
    Route("/models", models, methods=["GET"]),
    Route("/models/{folder}", models_in, methods=["GET"]),
    Route("/extensions", extensions, methods=["GET"]),
    Route("/prompt", get_prompt, methods=["GET"]),
    Route("/interrupt", post_interrupt, methods=["POST"]),
    Route("/queue", get_queue, methods=["GET"]),
    Route("/queue", post_queue, methods=["POST"]),
    Route("/history", get_history, methods=["GET"]),
    Route("/history", post_history, methods=["POST"]),
    Route("/history/{prompt_id}", get_history_item, methods=["GET"]),
]
