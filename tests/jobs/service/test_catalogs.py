"""jobs.service.catalogs: what every reachable backend offers, merged, fetched once per TTL whatever the number of
callers, following the backend list, and tried again soon after no backend answered."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from comfy.catalog import Catalog
from comfy.client import ComfyClient
from comfy.fake.server import FakeHandle
from jobs.service.catalogs import CatalogCache, merge_catalogs

NOWHERE = "http://127.0.0.1:9"  # nothing listens there: refused at once


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The base URL of every /object_info the cache asks for."""
    seen: list[str] = []
    real = ComfyClient.object_info

    async def counted(self: ComfyClient, *args: Any, **kwargs: Any) -> Catalog:
        seen.append(self.base_url)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(ComfyClient, "object_info", counted)
    return seen


def _listing(urls: list[str]) -> Any:
    async def read() -> Sequence[str]:
        return list(urls)

    return read


def test_merged_choices_keep_the_first_backends_order_without_repeats() -> None:
    a = Catalog(checkpoints=("x.safetensors", "y.safetensors"), samplers=("euler",), node_classes=frozenset({"A"}))
    b = Catalog(checkpoints=("y.safetensors", "z.safetensors"), loras=("l",), node_classes=frozenset({"B"}))
    merged = merge_catalogs([a, b])
    assert merged.checkpoints == ("x.safetensors", "y.safetensors", "z.safetensors")
    assert (merged.loras, merged.samplers, merged.node_classes) == (("l",), ("euler",), frozenset({"A", "B"}))


async def test_callers_within_the_ttl_share_one_fetch(fake: FakeHandle, fetches: list[str]) -> None:
    cache = CatalogCache(_listing([fake.url]), ttl_s=60, timeout_s=5)
    try:
        catalogs = await asyncio.gather(*(cache.get() for _ in range(20)))
        assert catalogs[0] is not None and catalogs[0].checkpoints
        assert all(c is catalogs[0] for c in catalogs)
        assert fetches == [fake.url]
        cache.invalidate()  # a template or backend change
        assert await cache.get() == catalogs[0]
        assert len(fetches) == 2
    finally:
        await cache.aclose()


async def test_the_backend_list_is_followed_and_unreachable_backends_left_out(
    fake: FakeHandle, fetches: list[str]
) -> None:
    urls = [fake.url + "/", NOWHERE]
    cache = CatalogCache(_listing(urls), ttl_s=60, timeout_s=5)
    try:
        only_fake = await cache.get()
        assert only_fake is not None and only_fake.checkpoints
        assert sorted(c.base_url for c in cache.clients) == sorted([fake.url, NOWHERE])
        urls[:] = [NOWHERE]
        cache.invalidate()
        assert await cache.get() is None, "no backend answered"
        assert [c.base_url for c in cache.clients] == [NOWHERE], "a removed backend's client is closed and gone"
    finally:
        await cache.aclose()


async def test_after_no_backend_answered_it_asks_again_well_within_the_ttl(
    fake: FakeHandle, fetches: list[str]
) -> None:
    urls = [NOWHERE]
    cache = CatalogCache(_listing(urls), ttl_s=2.0, timeout_s=5)
    try:
        assert await cache.get() is None
        urls[:] = [fake.url]
        await asyncio.sleep(0.45)  # past a fifth of the TTL: a failed fetch is kept no longer
        assert await cache.get() is not None
        assert fetches == [NOWHERE, fake.url]
        await asyncio.sleep(0.45)
        assert await cache.get() is not None
        assert fetches == [NOWHERE, fake.url], "a catalogue that arrived is kept for the whole TTL"
    finally:
        await cache.aclose()


async def test_while_the_backend_list_cannot_be_read_the_last_one_stays(fake: FakeHandle, fetches: list[str]) -> None:
    reads = 0

    async def urls() -> Sequence[str]:
        nonlocal reads
        reads += 1
        if reads > 1:
            raise RedisConnectionError("redis is away")
        return [fake.url]

    cache = CatalogCache(urls, ttl_s=60, timeout_s=5)
    try:
        assert await cache.get() is not None
        cache.invalidate()
        assert await cache.get() is not None, "the backends last read are asked"
        assert reads == 2 and fetches == [fake.url, fake.url]
    finally:
        await cache.aclose()
