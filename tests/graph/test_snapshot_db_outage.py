"""A SNAPSHOT's database-backed fields (images, owner, queue position) wait out a PostgreSQL outage.

They are read through the connection's DataLoaders after the subscription's own read; the loaders
here go through a TCP proxy that is cut, so the outage falls exactly between the two.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.proxy import CuttableProxy
from db.transitions import create_generation
from graph.context import Context
from graph.loaders import Loaders
from graph.schema import build_schema
from settings import Settings
from tests.graph.schema_level import SchemaClient, schema_state

SNAPSHOT = """
subscription($id: ID!) { generationEvents(id: $id) {
  kind generation { id images { url } owner { name } progress { queuePosition } }
} }
"""


async def test_snapshot_fields_wait_for_the_database_instead_of_erroring(
    proxied: tuple[CuttableProxy, async_sessionmaker[AsyncSession]], stack_settings: Settings
) -> None:
    proxy, loader_sessions = proxied
    async with schema_state(stack_settings) as state:
        client = await SchemaClient.create(state)
        async with state.sessions() as session:
            change, _ = await create_generation(
                session, owner_id=client.user.id, template="txt2img", params={"prompt": "p"}, prompt="p", seed=1,
                namespace=state.keys.namespace,
            )  # fmt: skip
            await session.commit()
        gid = str(change.generation.id)
        opened = 0

        def counted() -> AsyncSession:
            nonlocal opened
            opened += 1
            return loader_sessions()

        loaders = Loaders.create(counted)  # type: ignore[arg-type]
        context = Context(state=state, request=None, response=None, loaders=loaders)  # type: ignore[arg-type]
        context.viewer_row = client.user
        await proxy.cut()
        stream = await build_schema().subscribe(SNAPSHOT, variable_values={"id": gid}, context_value=context)
        assert isinstance(stream, AsyncIterator)
        try:
            first: asyncio.Future[Any] = asyncio.ensure_future(anext(stream))
            # Three loaders (images, owner, queue position) read once each; past that, reads are tried again.
            async with asyncio.timeout(10):
                while True:
                    if opened >= 3 * 2 or first.done():
                        break
                    await asyncio.sleep(0.01)
            assert not first.done(), first.result().errors  # the outage goes on: the fields still wait
            await proxy.restore()
            result = await asyncio.wait_for(first, 30)
        finally:
            await stream.aclose()
    assert result.errors is None, result.errors
    generation = result.data["generationEvents"]["generation"]
    assert result.data["generationEvents"]["kind"] == "SNAPSHOT"
    position = generation.pop("progress")["queuePosition"]
    assert isinstance(position, int) and position >= 1  # QUEUED: read through the loader (other tests queue too)
    assert generation == {"id": gid, "images": [], "owner": {"name": client.user.name}}
