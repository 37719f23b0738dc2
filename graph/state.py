"""What the API process builds once, in the ASGI lifespan, and hands to every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from arq.connections import ArqRedis, RedisSettings, create_pool
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.engine import create_engine, create_session_factory
from db.users import create_token, ensure_user
from graph.fanout import EventHub
from graph.lastseq import LastSeqReads
from jobs.backend_list import read_backend_urls
from jobs.keys import Keys
from jobs.service.catalogs import CatalogCache
from jobs.service.generations import JobService
from jobs.storage import ImageStore
from jobs.templates import TemplateRegistry, sync_template_files
from settings import Settings

__all__ = ["DEV_USER", "AppState", "app_state"]

DEV_USER = "dev"


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    keys: Keys
    hub: EventHub
    templates: TemplateRegistry  # the current templates, as saved by any process
    catalogs: CatalogCache
    store: ImageStore
    jobs: JobService
    last_seqs: LastSeqReads


@asynccontextmanager
async def app_state(settings: Settings) -> AsyncIterator[AppState]:
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    redis = await create_pool(RedisSettings.from_dsn(settings.required_redis_url))
    keys = Keys(settings.namespace)
    hub = EventHub(settings.required_redis_url, keys)
    templates = TemplateRegistry(sessions=sessions, redis=redis, keys=keys)

    async def backend_urls() -> tuple[str, ...]:
        return await read_backend_urls(redis, keys, default=settings.comfyui_urls)

    catalogs = CatalogCache(backend_urls, ttl_s=settings.catalog_ttl_s, timeout_s=min(settings.comfy_timeout_s, 5.0))
    store = ImageStore(settings.images_dir)
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        redis=redis,
        keys=keys,
        hub=hub,
        templates=templates,
        catalogs=catalogs,
        store=store,
        jobs=JobService(
            settings=settings,
            sessions=sessions,
            redis=redis,
            templates=templates,
            catalogs=catalogs,
            store=store,
        ),
        last_seqs=LastSeqReads(sessions),
    )
    try:
        # Shipped and directory templates into the database (a new version only where one changed);
        # other running processes are told of a change as they are of a save.
        if await sync_template_files(sessions, settings.template_dirs):
            await templates.announce()
        await hub.start()
        if settings.dev_mode and settings.dev_token is not None:
            async with sessions() as session:
                user = await ensure_user(session, name=DEV_USER, is_admin=True)
                await create_token(session, user_id=user.id, name="dev", token=settings.dev_token.get_secret_value())
                await session.commit()
        yield state
    finally:
        await hub.stop()
        await catalogs.aclose()
        await redis.aclose(close_connection_pool=True)
        await engine.dispose()
