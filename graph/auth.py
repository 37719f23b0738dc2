"""Bearer tokens → users, with a small cache that a revocation empties at once in every API process.

The cache holds valid tokens only, keyed by their SHA-256 (never the token itself), at most
`max_entries` of them, each for at most `ttl_s` and never past the token's expiry. A bearer value over
`MAX_TOKEN_LENGTH` is refused before hashing; an invalid token is not remembered, so a client sending
large made-up tokens cannot fill the process's memory with them.

Revocation: `safelight revoke-token` marks the rows and increments a counter in Redis
(`revocations_key`); each lookup reads that counter (one GET) and empties the cache when it moved,
so a revoked token stops working in every process with its next request.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis
from redis.exceptions import RedisError
from starlette.requests import Request

from db import models
from db.users import MAX_TOKEN_LENGTH, hash_token, token_owner
from graph.guards import LOOPBACK_HOSTS
from graph.state import AppState
from jobs.keys import Keys

__all__ = ["Auth", "bearer_token", "bump_revocations", "revocations_key"]

log = logging.getLogger(__name__)


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for any other header or none."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def revocations_key(keys: Keys) -> str:
    """A counter that every token revocation increments."""
    return f"{keys.namespace}:tokens-revoked"


async def bump_revocations(redis: Any, keys: Keys) -> None:
    await redis.incr(revocations_key(keys))


class Auth:
    def __init__(self, state: AppState, *, ttl_s: float = 30.0, max_entries: int = 10_000) -> None:
        self._state = state
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, models.User]] = OrderedDict()
        self._revocations: bytes | None = None
        self._warned_at = -10.0

    def __len__(self) -> int:
        return len(self._cache)

    async def viewer(self, token: str | None, *, local: bool = False) -> models.User | None:
        """The token's user; without a token, in dev mode and for a `local` (loopback) client, the dev user."""
        settings = self._state.settings
        if not token:
            if settings.dev_mode and settings.dev_token is not None and local:
                token = settings.dev_token.get_secret_value()  # local development: the dev user
            else:
                return None
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        return await self.viewer_by_hash(hash_token(token))

    async def request_viewer(self, request: Request) -> models.User | None:
        """The user of an HTTP request (GraphQL or a route): its bearer token, or the dev user as `viewer` says."""
        local = request.client is not None and request.client.host in LOOPBACK_HOSTS
        return await self.viewer(bearer_token(request.headers.get("authorization")), local=local)

    async def viewer_by_hash(self, key: str) -> models.User | None:
        """The user of a token by its SHA-256: a websocket keeps only this, to check it again later."""
        await self._follow_revocations(self._state.redis)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None:
            if now < hit[0]:
                self._cache.move_to_end(key)
                return hit[1]
            del self._cache[key]
        async with self._state.sessions() as session:
            owner = await token_owner(session, token_hash=key)
        if owner is None:
            return None
        until = now + self._ttl_s
        if owner.expires_at is not None:
            until = min(until, now + (owner.expires_at - datetime.now(owner.expires_at.tzinfo)).total_seconds())
        self._cache[key] = (until, owner.user)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return owner.user

    async def _follow_revocations(self, redis: ArqRedis) -> None:
        try:
            current = await redis.get(revocations_key(self._state.keys))
        except (RedisError, OSError, TimeoutError) as error:
            # Redis away: cached tokens keep working for their few seconds; the database still decides
            # every lookup, so a revocation is missed only by entries cached before it.
            now = time.monotonic()
            if now - self._warned_at > 10.0:
                self._warned_at = now
                log.warning("token revocations cannot be read from Redis (%s); using the cache", type(error).__name__)
            return
        if current != self._revocations:
            self._cache.clear()
            self._revocations = current
