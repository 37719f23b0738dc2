"""Choosing a backend: the least busy one, preferring the one with the checkpoint loaded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from comfy.fake.server import FakeHandle
from jobs.backends import BackendPool, NoBackend

URLS = ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b", "http://127.0.0.1:9/c")


@pytest.fixture
async def pool() -> AsyncIterator[BackendPool]:
    pool = BackendPool(client_id="test", timeout_s=1.0)
    await pool.reconcile(URLS)  # nothing listens there: the sockets keep retrying in the background
    yield pool
    await pool.close()


def _state(pool: BackendPool, **loaded: tuple[int, str | None]) -> None:
    for name, (in_flight, checkpoint) in loaded.items():
        backend = pool.get(f"http://127.0.0.1:9/{name}")
        assert backend is not None
        backend.in_flight, backend.last_checkpoint = in_flight, checkpoint


async def test_choose_prefers_the_least_busy_backend_with_the_checkpoint(pool: BackendPool) -> None:
    _state(pool, a=(1, "x"), b=(0, "y"), c=(0, None))
    assert pool.choose(checkpoint="y").url.endswith("/b")
    assert pool.choose(checkpoint="x").url.endswith("/b"), "busier backends lose even with the checkpoint"
    assert pool.choose(checkpoint=None).url.endswith("/c"), "no checkpoint: one with none loaded"
    _state(pool, a=(0, "x"))
    assert pool.choose(checkpoint="x").url.endswith("/a")
    assert pool.choose(checkpoint="z").url.endswith("/a"), "otherwise the first of the least busy"


async def test_choices_answer_for_every_checkpoint_what_choose_does(pool: BackendPool) -> None:
    _state(pool, a=(2, "x"), b=(1, "y"), c=(1, "x"))
    by_checkpoint, default = pool.choices()
    assert {k: b.url[-1] for k, b in by_checkpoint.items()} == {"y": "b", "x": "c"}
    assert default.url.endswith("/b")
    for checkpoint in ("x", "y", "z", None):
        assert by_checkpoint.get(checkpoint or "", default) is pool.choose(checkpoint=checkpoint)


async def test_no_healthy_backend(pool: BackendPool) -> None:
    for url in URLS:
        backend = pool.get(url)
        assert backend is not None
        backend.failed(threshold=1, cooldown_s=60)
    with pytest.raises(NoBackend):
        pool.choices()


async def test_names_and_reasons_carry_no_credentials() -> None:
    pool = BackendPool(client_id="test", timeout_s=1.0)
    with pytest.raises(NoBackend, match="No ComfyUI backend is configured"):
        pool.choices()
    await pool.reconcile(["http://admin:s3cret@127.0.0.1:9/comfy"])
    try:
        (backend,) = list(pool)
        assert backend.name == "127.0.0.1:9/comfy"
        backend.failed(threshold=1, cooldown_s=60)
        with pytest.raises(NoBackend) as info:
            pool.choices()
        assert str(info.value) == "Backend 127.0.0.1:9/comfy is unreachable"
    finally:
        await pool.close()


async def test_a_backend_whose_socket_opens_is_healthy_again_and_wakes_waiters(fake: FakeHandle) -> None:
    """A waiting job wakes when a websocket opens, not at its next timer; the circuit closes."""
    pool = BackendPool(client_id=f"test-{uuid.uuid4().hex[:8]}", timeout_s=1.0)
    try:
        await pool.reconcile([fake.url])  # the socket starts connecting; nothing has opened yet
        (backend,) = list(pool)
        backend.failed(threshold=1, cooldown_s=600)
        assert not backend.healthy
        await asyncio.wait_for(pool.wait_for_change(600), 10)
        assert backend.socket.connected.is_set()
        assert backend.healthy
    finally:
        await pool.close()
