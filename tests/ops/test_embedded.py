"""Embedded PostgreSQL and Redis: start, use, stop, start again with the data kept."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import asyncpg
import pytest
import redis

from safelight.embedded import EmbeddedPostgres, EmbeddedRedis
from safelight.procs import free_port
from tests.ops.reaper import Reaper


@pytest.fixture(autouse=True)
def _stop_servers_on_failure(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A test that fails between a server's start and stop leaves nothing running (nor its backends).

    `server_dir` is set up before `reaper`, so the reaper stops the servers before the directory goes.
    """
    dirs = [tmp_path]
    if "server_dir" in request.fixturenames:
        dirs.append(request.getfixturevalue("server_dir"))
    reaper: Reaper = request.getfixturevalue("reaper")
    for directory in dirs:
        reaper.own(directory)


async def _query(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        if ";" in sql:
            await conn.execute(sql)
            return []
        return await conn.fetch(sql)
    finally:
        await conn.close()


@pytest.mark.slow
async def test_postgres_keeps_data_across_restarts(server_dir: Path) -> None:
    with EmbeddedPostgres(server_dir / "postgres") as pg:
        url = pg.start()  # idempotent while running
        assert url == f"postgresql://postgres@127.0.0.1:{pg.port}/safelight"
        await _query(url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')")
    assert pg.pid is None

    port = free_port()
    pg = EmbeddedPostgres(server_dir / "postgres", port=port)
    url = pg.start()
    try:
        assert url.endswith(f"@127.0.0.1:{port}/safelight")
        rows = await _query(url, "SELECT v FROM kept")
        assert [r["v"] for r in rows] == ["hello"]
        (listen,) = await _query(url, "SHOW listen_addresses")
        assert listen[0] == "127.0.0.1"
    finally:
        pg.stop()


@pytest.mark.slow
async def test_postgres_starts_over_a_stale_postmaster_pid(server_dir: Path) -> None:
    pg = EmbeddedPostgres(server_dir / "postgres")
    url = pg.start()
    await _query(url, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
    await _query(url, "CHECKPOINT")
    assert pg.pid is not None
    os.kill(pg.pid, signal.SIGKILL)  # a crash: postmaster.pid stays behind
    pg.stop()
    lock = pg.pgdata / "postmaster.pid"
    lines = lock.read_text().splitlines()
    # After a reboot or in a container the recorded pid often belongs to someone else.
    lock.write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")

    restarted = EmbeddedPostgres(server_dir / "postgres")
    try:
        rows = await _query(restarted.start(), "SELECT v FROM kept")
        assert [r["v"] for r in rows] == [7]
    finally:
        restarted.stop()


def test_redis_keeps_data_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedRedis(tmp_path / "redis", port=port) as server:
        assert server.url == f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.set("kept", "yes")
        client.close()
    assert server.pid is None

    server = EmbeddedRedis(tmp_path / "redis")  # another port, same data
    url = server.start()
    try:
        client = redis.Redis.from_url(url)
        assert client.get("kept") == b"yes"
        client.close()
    finally:
        server.stop()


def test_redis_restarts_after_a_crash(tmp_path: Path) -> None:
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", port=port)
    server.start()
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    server.stop()
    assert (tmp_path / "redis" / "valkey.pid").exists()

    with EmbeddedRedis(tmp_path / "redis", port=port) as again:
        client = redis.Redis.from_url(again.url)
        assert client.ping()
        client.close()


def test_redis_replaces_a_server_left_running_on_its_data(tmp_path: Path) -> None:
    port = free_port()
    leftover = EmbeddedRedis(tmp_path / "redis", port=port)  # as if its owner had crashed
    client = redis.Redis.from_url(leftover.start())
    client.set("kept", "yes")
    client.close()

    with EmbeddedRedis(tmp_path / "redis", port=port) as server:
        assert leftover.pid is None
        client = redis.Redis.from_url(server.url)
        assert client.get("kept") == b"yes"
        client.close()


@pytest.mark.slow
async def test_postgres_replaces_a_server_left_running_on_its_data(server_dir: Path) -> None:
    leftover = EmbeddedPostgres(server_dir / "postgres")
    await _query(leftover.start(), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)")

    with EmbeddedPostgres(server_dir / "postgres") as pg:
        assert leftover.pid is None
        rows = await _query(pg.url, "SELECT v FROM kept")
        assert [r["v"] for r in rows] == [1]
