"""API tokens: revocation that takes effect at once in every API process, expiry, and a bounded cache."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.users import create_token, ensure_user
from graph.app import create_app
from settings import Settings
from tests.stack import GraphQLClient, serve

VIEWER = "{ viewer { name } }"


async def _token(sessions: async_sessionmaker[AsyncSession], *, expires_at: datetime | None = None) -> tuple[str, str]:
    name = f"tok-{uuid.uuid4().hex[:8]}"
    async with sessions() as session:
        user = await ensure_user(session, name=name)
        token = await create_token(session, user_id=user.id, name="test", expires_at=expires_at)
        await session.commit()
    return name, token


async def _cli(settings: Settings, *args: str, stdin: str = "") -> tuple[int, str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "SAFELIGHT_NAMESPACE": settings.namespace,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "safelight.cli", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    return process.returncode or 0, out.decode()


async def test_a_revoked_token_stops_working_at_once_in_every_api_process(
    stack_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Before: a revoked token kept working for 30 s (the cache), and nothing could revoke one."""
    name, token = await _token(session_factory)
    async with serve(create_app(stack_settings)) as first, serve(create_app(stack_settings)) as second:
        clients = [GraphQLClient(first, token), GraphQLClient(second, token)]
        try:
            for client in clients:  # both processes now hold the token in their caches
                assert (await client.query(VIEWER))["viewer"]["name"] == name
            code, out = await _cli(stack_settings, "revoke-token", stdin=token + "\n")
            assert code == 0 and "revoked 1 token" in out, out
            for client in clients:
                assert (await client.query(VIEWER))["viewer"] is None
        finally:
            for client in clients:
                await client.aclose()


async def test_revoking_every_token_of_a_user(
    api_url: str, stack_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    name, token = await _token(session_factory)
    client = GraphQLClient(api_url, token)
    try:
        assert (await client.query(VIEWER))["viewer"]["name"] == name
        code, out = await _cli(stack_settings, "revoke-token", "--user", name)
        assert code == 0, out
        assert (await client.query(VIEWER))["viewer"] is None
    finally:
        await client.aclose()


async def test_an_expired_token_is_refused(api_url: str, session_factory: async_sessionmaker[AsyncSession]) -> None:
    _, expired = await _token(session_factory, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    name, current = await _token(session_factory, expires_at=datetime.now(UTC) + timedelta(days=1))
    for token, expected in ((expired, None), (current, name)):
        client = GraphQLClient(api_url, token)
        try:
            viewer = (await client.query(VIEWER))["viewer"]
            assert (viewer and viewer["name"]) == expected
        finally:
            await client.aclose()


async def test_create_token_takes_an_expiry(stack_settings: Settings) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    code, out = await _cli(stack_settings, "create-token", name, "--expires-in", "2h")
    assert code == 0, out
    code, out = await _cli(stack_settings, "create-token", name, "--expires-in", "soon")
    assert code != 0 and "--expires-in" in out


async def test_only_valid_tokens_are_cached_and_the_cache_is_bounded(
    stack_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Before: 250 connection_inits with 4 MB invalid tokens grew the process by ~1 GB (every token was kept)."""
    settings = stack_settings.model_copy(update={"token_cache_size": 3})
    app = create_app(settings)
    tokens = [(await _token(session_factory))[1] for _ in range(5)]
    async with serve(app) as url:
        anonymous = GraphQLClient(url, None)
        try:
            for i in range(20):
                anonymous.token = f"invalid-{i}-" + "x" * (100 if i % 2 else 5_000)
                assert (await anonymous.query(VIEWER))["viewer"] is None
            assert len(app.state.auth) == 0
            for token in tokens:
                anonymous.token = token
                assert (await anonymous.query(VIEWER))["viewer"] is not None
            assert len(app.state.auth) == 3
        finally:
            await anonymous.aclose()


async def test_a_socket_of_a_revoked_token_takes_no_new_operation(
    api_url: str, stack_settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    import json

    import websockets

    _, token = await _token(session_factory)
    url = "ws" + api_url.removeprefix("http") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        code, out = await _cli(stack_settings, "revoke-token", stdin=token)
        assert code == 0, out
        subscribe = {"query": "subscription { myGenerationEvents { seq } }"}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_tokens_still_resolve_while_redis_is_away(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    from types import SimpleNamespace

    from redis.exceptions import ConnectionError as RedisConnectionError

    from graph.auth import Auth
    from jobs.keys import Keys

    class AwayRedis:
        async def get(self, key: str) -> bytes:
            raise RedisConnectionError("connection refused")

    name, token = await _token(session_factory)
    state = SimpleNamespace(settings=settings, redis=AwayRedis(), keys=Keys("away"), sessions=session_factory)
    auth = Auth(state)  # type: ignore[arg-type]
    user = await auth.viewer(token)
    assert user is not None and user.name == name
    assert await auth.viewer("not-a-token") is None
