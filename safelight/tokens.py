"""`safelight create-token NAME` and `safelight revoke-token`: API tokens from the command line.

A new token is printed once (only its hash is stored), optionally with an expiry. Revocation marks
the rows and bumps the revocation counter in Redis, so every API process drops its cached tokens
with its next request (graph/auth.py): a revoked token stops working at once everywhere.
The token to revoke is read from stdin, so it never shows in a process list or shell history.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from db.engine import create_engine, create_session_factory
from db.users import create_token, ensure_user, revoke_tokens
from graph.auth import bump_revocations
from jobs.keys import Keys
from settings import ConfigError, Settings

__all__ = ["create_user_token", "parse_lifetime", "revoke"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_lifetime(text: str) -> timedelta:
    """'90m', '12h', '30d', '3600s' or plain seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"--expires-in {text!r}: give a positive number with s, m, h or d (e.g. 30d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2) or "s"])


def create_user_token(settings: Settings, *, name: str, admin: bool = False, expires_in: str | None = None) -> str:
    expires_at = None if expires_in is None else datetime.now(UTC) + parse_lifetime(expires_in)

    async def run() -> str:
        engine = create_engine(settings, pool_size=1)
        try:
            async with create_session_factory(engine)() as session:
                user = await ensure_user(session, name=name, is_admin=admin)
                token = await create_token(session, user_id=user.id, name="cli", expires_at=expires_at)
                await session.commit()
                return token
        finally:
            await engine.dispose()

    return asyncio.run(run())


def revoke(settings: Settings, *, token: str | None = None, user_name: str | None = None) -> int:
    """Revoke a token or every token of a user; how many were valid. API processes follow at once."""

    async def run() -> int:
        engine = create_engine(settings, pool_size=1)
        try:
            async with create_session_factory(engine)() as session:
                count = await revoke_tokens(session, token=token, user_name=user_name)
                await session.commit()
        finally:
            await engine.dispose()
        redis = Redis.from_url(settings.required_redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            await bump_revocations(redis, Keys(settings.namespace))
        finally:
            await redis.aclose()
        return count

    return asyncio.run(run())
