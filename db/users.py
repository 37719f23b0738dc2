"""Users and their API tokens. Tokens are random, shown once, and stored as SHA-256.

A token may expire (`expires_at`) and can be revoked (`revoked_at`); either makes it invalid at once
for `user_by_token`. API processes cache valid tokens briefly; they learn of a revocation from the
revocation counter in Redis (graph/auth.py), which `safelight revoke-token` bumps.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiToken, User

__all__ = [
    "MAX_TOKEN_LENGTH",
    "TokenOwner",
    "create_token",
    "ensure_user",
    "hash_token",
    "revoke_tokens",
    "token_owner",
    "user_by_token",
    "users_by_ids",
]

# Longer bearer values are refused without hashing or a query (ours are 43 characters).
MAX_TOKEN_LENGTH = 512


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def ensure_user(session: AsyncSession, *, name: str, is_admin: bool = False) -> User:
    """The user called `name`, created if missing (admin flag only set on creation)."""
    stmt = (
        pg_insert(User)
        .values(id=uuid.uuid4(), name=name, is_admin=is_admin)
        .on_conflict_do_nothing(index_elements=[User.name])
    )
    await session.execute(stmt)
    return (await session.execute(select(User).where(User.name == name))).scalar_one()


async def create_token(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    name: str = "",
    token: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Store a token's hash and return the token (generated unless given, e.g. the dev token)."""
    token = token or secrets.token_urlsafe(32)
    stmt = (
        pg_insert(ApiToken)
        .values(id=uuid.uuid4(), user_id=user_id, token_hash=hash_token(token), name=name, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=[ApiToken.token_hash])
    )
    await session.execute(stmt)
    return token


@dataclass(frozen=True, slots=True)
class TokenOwner:
    user: User
    expires_at: datetime | None


async def token_owner(session: AsyncSession, *, token_hash: str) -> TokenOwner | None:
    """The user of a valid (not revoked, not expired) token, by the token's hash."""
    stmt = (
        select(User, ApiToken.expires_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == token_hash,
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > func.now()),
        )
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else TokenOwner(user=row[0], expires_at=row[1])


async def user_by_token(session: AsyncSession, *, token: str) -> User | None:
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    owner = await token_owner(session, token_hash=hash_token(token))
    return None if owner is None else owner.user


async def revoke_tokens(session: AsyncSession, *, token: str | None = None, user_name: str | None = None) -> int:
    """Revoke one token (by its value) or every token of a user; how many were still valid."""
    if (token is None) == (user_name is None):
        raise ValueError("give a token or a user name")
    stmt = update(ApiToken).where(ApiToken.revoked_at.is_(None)).values(revoked_at=func.now())
    if token is not None:
        stmt = stmt.where(ApiToken.token_hash == hash_token(token))
    else:
        stmt = stmt.where(ApiToken.user_id.in_(select(User.id).where(User.name == user_name)))
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def users_by_ids(session: AsyncSession, *, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
    if not user_ids:
        return {}
    rows = (await session.execute(select(User).where(User.id.in_(list(user_ids))))).scalars()
    return {user.id: user for user in rows}
