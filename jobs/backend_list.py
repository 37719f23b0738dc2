"""The ComfyUI backend list as data: a Redis key overrides COMFYUI_URLS while it is set.

Workers re-read it every heartbeat and API processes with every catalogue
refresh, so backends are added and removed without restarting anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from redis.asyncio import Redis

from jobs.keys import Keys

__all__ = ["MAX_BACKENDS", "normalize_backend_urls", "read_backend_urls", "write_backend_urls"]

MAX_BACKENDS = 64


async def read_backend_urls(redis: Redis, keys: Keys, *, default: Sequence[str]) -> tuple[str, ...]:
    raw = await redis.get(keys.backends)
    if not raw:
        return tuple(default)
    urls = json.loads(raw)
    return tuple(str(u) for u in urls) if isinstance(urls, list) else tuple(default)


def normalize_backend_urls(urls: Sequence[str]) -> tuple[str, ...]:
    """Strip, de-duplicate and check; raise ValueError naming the bad entry."""
    cleaned: dict[str, None] = {}
    for url in urls:
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")) or len(url) > 500 or " " in url:
            raise ValueError(f"{url!r} is not an http(s) URL")
        cleaned[url] = None
    if len(cleaned) > MAX_BACKENDS:
        raise ValueError(f"at most {MAX_BACKENDS} backends")
    return tuple(cleaned)


async def write_backend_urls(redis: Redis, keys: Keys, urls: Sequence[str]) -> tuple[str, ...]:
    """Set the list (an empty list returns to COMFYUI_URLS); the list now in force."""
    checked = normalize_backend_urls(urls)
    if checked:
        await redis.set(keys.backends, json.dumps(list(checked)))
    else:
        await redis.delete(keys.backends)
    return checked
