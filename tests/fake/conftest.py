from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from comfy.fake.server import FakeConfig, FakeHandle, running_fake


@pytest.fixture
async def comfy() -> AsyncIterator[FakeHandle]:
    async with running_fake(FakeConfig(step_time=0.005)) as handle:
        yield handle


@pytest.fixture
async def http(comfy: FakeHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=comfy.url, timeout=10) as client:
        yield client
