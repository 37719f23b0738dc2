"""The model catalogue of all backends, merged and cached for a short time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from comfy.catalog import Catalog
from comfy.client import ComfyClient
from comfy.errors import ComfyError

__all__ = ["CatalogCache", "merge_catalogs"]


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
    )


class CatalogCache:
    """What every reachable backend offers; refetched after `ttl_s`.

    `get()` returns None when no backend answered: callers decide whether that
    is an error (creating a generation) or just an empty picker.
    """

    def __init__(self, clients: Sequence[ComfyClient], *, ttl_s: float) -> None:
        self._clients = list(clients)
        self._ttl_s = ttl_s
        self._value: Catalog | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self) -> Catalog | None:
        if time.monotonic() - self._fetched_at < self._ttl_s:
            return self._value
        async with self._lock:
            if time.monotonic() - self._fetched_at < self._ttl_s:
                return self._value
            results = await asyncio.gather(*(client.object_info() for client in self._clients), return_exceptions=True)
            catalogs = [r for r in results if isinstance(r, Catalog)]
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, ComfyError):
                    raise result
            self._value = merge_catalogs(catalogs) if catalogs else None
            # A failed fetch is retried soon rather than cached for the whole TTL.
            self._fetched_at = time.monotonic() - (0 if catalogs else self._ttl_s * 0.8)
            return self._value
