"""The backend list is data: changed through the API, followed by workers and the API without restarts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from comfy.fake.server import FakeConfig, FakeHandle, running_fake
from tests.stack import CREATE, GraphQLClient

MakeClient = Callable[..., Awaitable[GraphQLClient]]

SET = """mutation($urls: [String!]!) { setBackends(urls: $urls) {
  __typename ... on BackendList { urls } ... on ValidationError { errors { field message } } } }"""
STATUS = "{ systemStatus { workers { comfyuiUrls } backends { url healthy } } }"


async def _worker_urls(admin: GraphQLClient, expected: set[str], *, within: float = 15.0) -> set[str]:
    seen: set[str] = set()
    for _ in range(int(within / 0.2)):
        workers = (await admin.query(STATUS))["systemStatus"]["workers"]
        seen = {u for w in workers for u in w["comfyuiUrls"]}
        if seen == expected:
            break
        await asyncio.sleep(0.2)
    return seen


@pytest.mark.usefixtures("worker")
async def test_admin_switches_backends_without_restarts(make_client: MakeClient, fake: FakeHandle) -> None:
    admin, user = await make_client(admin=True), await make_client()
    assert (await user.query(SET, {"urls": []}))["setBackends"]["__typename"] == "NotAllowedError"
    invalid = (await admin.query(SET, {"urls": ["ftp://nope"]}))["setBackends"]
    assert invalid["__typename"] == "ValidationError"
    assert invalid["errors"][0]["field"] == "urls"
    async with running_fake(FakeConfig(step_time=0.005)) as second:
        try:
            switched = (await admin.query(SET, {"urls": [second.url + "/"]}))["setBackends"]
            assert switched == {"__typename": "BackendList", "urls": [second.url]}
            assert await _worker_urls(admin, {second.url}) == {second.url}
            backends = (await admin.query(STATUS))["systemStatus"]["backends"]
            assert backends == [{"url": second.url, "healthy": True}]
            created = await user.query(CREATE, {"input": {"prompt": "elsewhere", "width": 64, "height": 64}})
            gid = created["createGeneration"]["generation"]["id"]
            for _ in range(150):
                row = await user.query("query($id: ID!) { generation(id: $id) { status backend } }", {"id": gid})
                if row["generation"]["status"] == "SUCCEEDED":
                    break
                await asyncio.sleep(0.1)
            # users see the backend's name (host and port), never its URL
            assert row["generation"] == {"status": "SUCCEEDED", "backend": second.url.removeprefix("http://")}
            assert second.fake.stats.submits == 1
        finally:
            restored = (await admin.query(SET, {"urls": []}))["setBackends"]
            assert restored == {"__typename": "BackendList", "urls": [fake.url]}
            assert await _worker_urls(admin, {fake.url}) == {fake.url}


@pytest.mark.usefixtures("worker")
async def test_admins_see_backend_urls_without_their_credentials(make_client: MakeClient, fake: FakeHandle) -> None:
    admin = await make_client(admin=True)
    with_secret = fake.url.replace("http://", "http://ops:s3cret@")
    redacted = fake.url.replace("http://", "http://***@")
    try:
        switched = (await admin.query(SET, {"urls": [with_secret]}))["setBackends"]
        assert switched == {"__typename": "BackendList", "urls": [redacted]}
        assert await _worker_urls(admin, {redacted}) == {redacted}
        status = await admin.query(STATUS)
        assert "s3cret" not in json.dumps(status)
        assert status["systemStatus"]["backends"] == [{"url": redacted, "healthy": True}]
    finally:
        restored = (await admin.query(SET, {"urls": []}))["setBackends"]
        assert restored == {"__typename": "BackendList", "urls": [fake.url]}
        assert await _worker_urls(admin, {fake.url}) == {fake.url}
