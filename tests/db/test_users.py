"""db.users: API tokens are stored hashed."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from db.users import create_token, user_by_token
from tests.db.rows import new_user


async def test_tokens_are_hashed(session: AsyncSession) -> None:
    owner = await new_user(session)
    token = await create_token(session, user_id=owner.id, name="cli")
    await session.commit()
    found = await user_by_token(session, token=token)
    assert found is not None and found.id == owner.id
    assert await user_by_token(session, token=token + "x") is None
    from sqlalchemy import text

    stored = (await session.execute(text("select token_hash from api_tokens"))).scalars().all()
    assert token not in stored
