"""The model catalogue of all backends, merged and cached for a short time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from comfy.catalog import Catalog, merge_object_info
from comfy.client import ComfyClient
from comfy.errors import ComfyError

__all__ = ["CatalogCache", "merge_catalogs"]

log = logging.getLogger(__name__)


def merge_catalogs(catalogs: Sequence[Catalog]) -> Catalog:
    def union(kind: str) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for catalog in catalogs:
            seen.update(dict.fromkeys(catalog.choices(kind)))
        return tuple(seen)

    return Catalog(
        checkpoints=union("checkpoints"),
        loras=union("loras"),
        samplers=union("samplers"),
        schedulers=union("schedulers"),
        node_classes=frozenset().union(*(c.node_classes for c in catalogs)),
        object_info=merge_object_info([c.object_info for c in catalogs]),
    )


class CatalogCache:
    """What every reachable backend offers; refetched after `ttl_s`.

    The backend list itself is re-read (via `urls`) with every refresh, so the
    API follows changes to it; `clients` are the API's clients for that list.
    `get()` returns None when no backend answered: callers decide whether that
    is an error (creating a generation) or just an empty picker.
    """

    def __init__(
        self,
        urls: Callable[[], Awaitable[Sequence[str]]],
        *,
        ttl_s: float,
        timeout_s: float,
    ) -> None:
        self._urls = urls
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._clients: dict[str, ComfyClient] = {}
        self._value: Catalog | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def clients(self) -> list[ComfyClient]:
        return list(self._clients.values())

    def invalidate(self) -> None:
        self._fetched_at = float("-inf")

    async def _sync_clients(self) -> None:
        try:
            wanted = [u.rstrip("/") for u in await self._urls()]
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # The list lives in Redis: while it is unreachable, the backends last read stay in force
            # (a create still checks its parameters and is accepted; its enqueue waits for recovery).
            log.warning("the backend list cannot be read (%s); keeping the %d last read", exc, len(self._clients))
            return
        for url in wanted:
            if url not in self._clients:
                self._clients[url] = ComfyClient(url, timeout=self._timeout_s)
        for url in [u for u in self._clients if u not in wanted]:
            await self._clients.pop(url).aclose()

    async def get(self) -> Catalog | None:
        if time.monotonic() - self._fetched_at < self._ttl_s:
            return self._value
        async with self._lock:
            if time.monotonic() - self._fetched_at < self._ttl_s:
                return self._value
            await self._sync_clients()
            results = await asyncio.gather(*(c.object_info() for c in self._clients.values()), return_exceptions=True)
            catalogs = [r for r in results if isinstance(r, Catalog)]
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, ComfyError):
                    raise result
            self._value = merge_catalogs(catalogs) if catalogs else None
            # A failed fetch is retried soon rather than cached for the whole TTL.
            self._fetched_at = time.monotonic() - (0 if catalogs else self._ttl_s * 0.8)
            return self._value

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
