from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from comfy.fake.config import Dialect
from comfy.fake.server import FakeConfig, FakeHandle, running_fake

# The comparison helpers hold most of the asserts of the replay tests: let pytest explain their failures
# (this runs before any test module imports them).
pytest.register_assert_rewrite("tests.fake.replay", "tests.fake.recordings", "tests.fake.wire")


@pytest.fixture
def dialect() -> Dialect:
    """The build the `comfy` fixture speaks; a test runs against both with
    `@pytest.mark.parametrize("dialect", BUILDS)` (tests.fake.recordings.BUILDS)."""
    return "upstream"


@pytest.fixture
async def comfy(dialect: Dialect) -> AsyncIterator[FakeHandle]:
    async with running_fake(FakeConfig(step_time=0.005, dialect=dialect)) as handle:
        yield handle


@pytest.fixture
async def http(comfy: FakeHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=comfy.url, timeout=10) as client:
        yield client
