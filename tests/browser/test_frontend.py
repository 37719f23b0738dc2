"""The web app in headless Chromium against the whole stack (API serving frontend/dist, worker, fake ComfyUI).

Each test prepares data through the API, then runs one `frontend/e2e/<spec>.mjs` script (playwright-core
driving Debian's Chromium) and asserts its exit status; the scripts save screenshots to
frontend/test-results/ when a step fails. A missing build, browser or node_modules fails the test rather
than skipping it: CI must not pass without having looked at the app.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from comfy.fake.server import FakeHandle
from graph.app import create_app
from settings import Settings
from tests.jobs.test_backend_outage import EVENTS as OUTAGE_EVENTS
from tests.jobs.test_backend_outage import FakeProcess, _executing, _free_port, _until, _waiting
from tests.jobs.test_backend_outage import stack as outage_stack
from tests.stack import CREATE, GENERATION_EVENTS, GraphQLClient, serve

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("worker")]

MakeClient = Callable[..., Awaitable[GraphQLClient]]

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCRIPT_TIMEOUT_S = 90.0


def _require_tools() -> str:
    if not (FRONTEND / "dist" / "index.html").is_file():
        pytest.fail("frontend/dist is missing: run `make frontend-build` (or `cd frontend && npm run build`)")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: `apt-get install -y chromium`")
    if not (FRONTEND / "node_modules" / "playwright-core").is_dir():
        pytest.fail("frontend/node_modules is missing: run `make frontend-install`")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH")
    return node


async def run_spec(spec: str, api_url: str, token: str, *extra: str) -> None:
    """Run one e2e script without blocking the event loop the API and worker share."""
    node = _require_tools()
    proc = await asyncio.create_subprocess_exec(
        node,
        str(FRONTEND / "e2e" / f"{spec}.mjs"),
        api_url,
        token,
        *extra,
        cwd=FRONTEND,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), SCRIPT_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(f"{spec}.mjs timed out after {SCRIPT_TIMEOUT_S} s:\n{out.decode()}")
    text = out.decode()
    print(text)
    assert proc.returncode == 0, f"{spec}.mjs failed (exit {proc.returncode}):\n{text}"


async def _token(make_client: MakeClient) -> str:
    client = await make_client()
    assert client.token is not None
    return client.token


async def test_generate_shows_progress_previews_and_image(
    api_url: str, fake: FakeHandle, make_client: MakeClient
) -> None:
    fake.config.step_time = 0.08
    await run_spec("generate", api_url, await _token(make_client))


async def test_cancel_a_running_generation(api_url: str, fake: FakeHandle, make_client: MakeClient) -> None:
    fake.config.step_time = 0.2
    await run_spec("cancel", api_url, await _token(make_client))


async def test_validation_errors_shown_at_their_fields(api_url: str, make_client: MakeClient) -> None:
    await run_spec("validation", api_url, await _token(make_client))


async def test_reconnect_resumes_from_last_seq(api_url: str, fake: FakeHandle, make_client: MakeClient) -> None:
    fake.config.step_time = 0.08
    await run_spec("reconnect", api_url, await _token(make_client))


async def _create(client: GraphQLClient, **input: Any) -> dict[str, Any]:
    data = await client.query(CREATE, {"input": {"width": 64, "height": 64, **input}})
    result = data["createGeneration"]
    assert result["__typename"] == "GenerationPayload", result
    generation: dict[str, Any] = result["generation"]
    return generation


async def _finish(client: GraphQLClient, generation_id: str) -> None:
    async with client.subscription(GENERATION_EVENTS, {"id": generation_id}) as sub:
        events = await sub.collect(60)
    assert events[-1]["generationEvents"]["status"] == "SUCCEEDED", events[-1]


async def test_history_pagination_and_reload_reattach(api_url: str, fake: FakeHandle, make_client: MakeClient) -> None:
    client = await make_client()
    assert client.token is not None
    fake.config.step_time = 0.0
    done = [await _create(client, prompt=f"history item {i}", steps=1) for i in range(29)]
    for generation in done:
        await _finish(client, generation["id"])
    fake.config.step_time = 0.15
    running = await _create(client, prompt="the needle in the haystack", steps=120)
    await run_spec("history", api_url, client.token, running["id"], str(len(done) + 1))


async def test_graphiql_offline_runs_a_subscription(api_url: str, fake: FakeHandle, make_client: MakeClient) -> None:
    fake.config.step_time = 0.02
    await run_spec("graphiql", api_url, await _token(make_client))


async def test_pages_at_desktop_and_phone_sizes(api_url: str, fake: FakeHandle, make_client: MakeClient) -> None:
    """Screenshots of every page to tests/browser/artifacts/, and the layout checks of screens.mjs."""
    fake.config.step_time = 0.08
    client = await make_client(admin=True)
    assert client.token is not None
    await run_spec("screens", api_url, client.token)


async def test_a_stalled_backend_shows_its_reason_and_countdown(
    stack_settings: Settings, make_client: MakeClient
) -> None:
    """ComfyUI killed mid-run: the live panel and the history card say the backend is away, why, and when
    the next try is, instead of RUNNING with a growing estimate (issue 12, item 8)."""
    comfy = FakeProcess(_free_port(), step_time=0.05)
    await comfy.start()
    try:
        async with outage_stack(
            stack_settings, make_client, comfy.url, backend_wait_s=600, comfy_watchdog_s=3600
        ) as api:
            created = await api.query(CREATE, {"input": {"prompt": "the backend goes away", "steps": 150}})
            gid = created["createGeneration"]["generation"]["id"]
            seen: list[dict[str, Any]] = []
            async with api.subscription(OUTAGE_EVENTS, {"id": gid}) as sub:
                await _until(sub, seen, _executing(5))
                await comfy.kill()
                await _until(sub, seen, _waiting)
                assert api.token is not None
                await run_spec("stalled", api.base_url, api.token, gid)
    finally:
        await comfy.kill()


async def test_dev_mode_signs_in_fills_the_playground_and_sign_out_sticks(
    stack_settings: Settings, make_client: MakeClient
) -> None:
    """Dev mode: the app and the playground take the dev token; "Sign out" survives a reload (issue 14, item 9)."""
    user = await make_client()
    assert user.token is not None
    settings = stack_settings.model_copy(update={"dev_mode": True, "dev_token": SecretStr(user.token)})
    async with serve(create_app(settings)) as url:
        await run_spec("devmode", url, user.token)


async def test_a_failed_generation_asks_run_again_neutrally(
    api_url: str, fake: FakeHandle, make_client: MakeClient
) -> None:
    client = await make_client()
    assert client.token is not None
    fake.config.step_time = 0.0
    fake.config.execution_error_node_class = "VAEDecode"  # fails after sampling
    failed = await _create(client, prompt="this one fails at the decoder, and that is fine", steps=5)
    async with client.subscription(GENERATION_EVENTS, {"id": failed["id"]}) as sub:
        events = await sub.collect(60)
    assert events[-1]["generationEvents"]["status"] == "FAILED", events[-1]
    await run_spec("failed", api_url, client.token, failed["id"])
