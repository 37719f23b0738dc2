"""`/_fake/...`: drive a fake running in another process (config, stats, reset). Not part of ComfyUI."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from comfy.fake.routes import json_response
from comfy.fake.state import FakeComfy


def _fake(request: Request) -> FakeComfy:
    fake: FakeComfy = request.app.state.fake
    return fake


async def get_config(request: Request) -> Response:
    return json_response(_fake(request).config.as_dict())


async def patch_config(request: Request) -> Response:
    """Apply the given fields (all or nothing); answers the whole config, or 400 naming the bad field."""
    config = _fake(request).config
    try:
        changes = json.loads(await request.body())
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object of FakeConfig fields")
        unknown = sorted(set(changes) - set(config.as_dict()))
        if unknown:
            raise ValueError(f"unknown FakeConfig fields: {unknown}")
        config.patch(changes)
    except ValueError as ex:
        return json_response({"error": str(ex)}, 400)
    return json_response(config.as_dict())


async def get_stats(request: Request) -> Response:
    return json_response(_fake(request).stats.as_dict())


async def reset(request: Request) -> Response:
    await _fake(request).reset()
    return json_response({"reset": True})


CONTROL_ROUTES = [
    Route("/_fake/config", get_config, methods=["GET"]),
    Route("/_fake/config", patch_config, methods=["POST"]),
    Route("/_fake/stats", get_stats, methods=["GET"]),
    Route("/_fake/reset", reset, methods=["POST"]),
]
