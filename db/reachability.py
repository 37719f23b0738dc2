"""Is the database reachable: a ping, and whether an exception is the database being unreachable (stopped,
restarting, a cut network) rather than a bad statement."""

from __future__ import annotations

from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["database_unreachable", "ping"]

_DRIVER_MODULES = ("asyncpg", "sqlalchemy")


async def ping(session: AsyncSession) -> None:
    """One round trip to the database (readiness); raises what the driver raises when it cannot answer."""
    await session.execute(text("select 1"))


def database_unreachable(error: BaseException) -> bool:
    """True for a lost or refused connection: worth waiting and trying again, not a failure of the work.

    - a connection lost mid-statement: SQLAlchemy's DBAPIError with `connection_invalidated`;
    - the pool timing out waiting for a connection (every one of them stuck on the outage);
    - a connection refused or timed out while connecting: asyncpg raises the OSError (or TimeoutError)
      itself, unwrapped; only counted when raised from the driver (a full disk is no outage).
    """
    if isinstance(error, exc.DBAPIError):
        return bool(error.connection_invalidated)
    if isinstance(error, exc.TimeoutError):
        return True
    return isinstance(error, (OSError, TimeoutError)) and _raised_in_driver(error)


def _raised_in_driver(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _DRIVER_MODULES:
            return True
        tb = tb.tb_next
    return False
