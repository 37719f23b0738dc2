"""The per-owner active quota, counted atomically across API processes.

`safelight_active_count` (migration 0003) takes a transaction-scoped advisory lock on the owner and
counts on a snapshot taken after it: whatever checks the limit with it (the INSERT of a new
generation, the retry of an old one) is serialized per owner, whichever process it runs in, and sees
every generation committed before it. Without the lock, concurrent INSERTs each counted on their own
start snapshot and all passed (60 concurrent creates with a limit of 20 admitted 26).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.states import ACTIVE

__all__ = ["active_count", "lock_and_count_active"]

# Fixed values of our own enum, not input: rendered into the statement, so it stays one prepared shape.
_ACTIVE_ARRAY: Any = literal_column(
    "ARRAY[" + ", ".join(f"'{status.value}'" for status in sorted(ACTIVE, key=lambda s: s.value)) + "]::text[]"
)


def active_count(owner_id: Any) -> Any:
    """The SQL expression: lock the owner (until the transaction ends), then count its active generations."""
    return func.safelight_active_count(owner_id, _ACTIVE_ARRAY, type_=BigInteger)


async def lock_and_count_active(session: AsyncSession, *, owner_id: uuid.UUID) -> int:
    """Lock the owner for the rest of the session's transaction and count its active generations.

    Call it in a transaction (not an autocommit session) and make the change it guards before that
    transaction commits: the lock is what keeps a concurrent create or retry from counting too early.
    """
    count = (await session.execute(select(active_count(owner_id)))).scalar_one()
    return int(count)
