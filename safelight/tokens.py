"""`safelight create-token NAME`: make a user (if needed) and print a new API token once."""

from __future__ import annotations

import asyncio

from db.engine import create_engine, create_session_factory
from db.users import create_token, ensure_user
from settings import Settings

__all__ = ["create_user_token"]


def create_user_token(settings: Settings, *, name: str, admin: bool = False) -> str:
    async def run() -> str:
        engine = create_engine(settings, pool_size=1)
        try:
            async with create_session_factory(engine)() as session:
                user = await ensure_user(session, name=name, is_admin=admin)
                token = await create_token(session, user_id=user.id, name="cli")
                await session.commit()
                return token
        finally:
            await engine.dispose()

    return asyncio.run(run())
