"""Is an exception the database being unreachable (stopped, restarting, a cut network), not a bad statement?"""

from __future__ import annotations

from sqlalchemy import exc

__all__ = ["database_unreachable"]


def database_unreachable(error: BaseException) -> bool:
    """True for a lost or refused connection: worth waiting and trying again, not a failure of the work.

    - a connection lost mid-statement: SQLAlchemy's DBAPIError with `connection_invalidated`;
    - a connection refused or timed out while connecting: asyncpg raises the OSError (or TimeoutError) itself;
    - the pool timing out waiting for a connection (every one of them stuck on the outage).
    """
    if isinstance(error, exc.DBAPIError):
        return bool(error.connection_invalidated) or isinstance(error, exc.InterfaceError)
    return isinstance(error, (OSError, TimeoutError, exc.TimeoutError))
