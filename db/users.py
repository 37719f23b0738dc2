"""Users and their API tokens. Tokens are random, shown once, and stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiToken, User

__all__ = ["create_token", "ensure_user", "hash_token", "user_by_token", "users_by_ids"]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def ensure_user(session: AsyncSession, *, name: str, is_admin: bool = False) -> User:
    """The user called `name`, created if missing (admin flag only set on creation)."""
    stmt = (
        pg_insert(User)
        .values(id=uuid.uuid4(), name=name, is_admin=is_admin)
        .on_conflict_do_nothing(index_elements=[User.name])
    )
    await session.execute(stmt)
    return (await session.execute(select(User).where(User.name == name))).scalar_one()


async def create_token(session: AsyncSession, *, user_id: uuid.UUID, name: str = "", token: str | None = None) -> str:
    """Store a token's hash and return the token (generated unless given, e.g. the dev token)."""
    token = token or secrets.token_urlsafe(32)
    stmt = (
        pg_insert(ApiToken)
        .values(id=uuid.uuid4(), user_id=user_id, token_hash=hash_token(token), name=name)
        .on_conflict_do_nothing(index_elements=[ApiToken.token_hash])
    )
    await session.execute(stmt)
    return token


async def user_by_token(session: AsyncSession, *, token: str) -> User | None:
    stmt = select(User).join(ApiToken, ApiToken.user_id == User.id).where(ApiToken.token_hash == hash_token(token))
    return (await session.execute(stmt)).scalar_one_or_none()


async def users_by_ids(session: AsyncSession, *, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
    if not user_ids:
        return {}
    rows = (await session.execute(select(User).where(User.id.in_(list(user_ids))))).scalars()
    return {user.id: user for user in rows}
