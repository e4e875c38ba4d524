"""Telling "PostgreSQL cannot be reached" apart from every other database error: the first
is worth waiting out (a restart, a failover), the others are bugs or bad input."""

from collections.abc import Iterator
from types import TracebackType

import asyncpg
from sqlalchemy import exc as sa

# asyncpg's errors for a server that is gone, starting, shutting down or full. Not the rest
# of OperatorInterventionError: QueryCanceledError is a statement timeout, not an outage.
_UNREACHABLE = (
    asyncpg.exceptions.ConnectionDoesNotExistError,  # the connection was lost mid-use
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.CannotConnectNowError,  # starting up, in recovery
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)
_DRIVER_MODULES = ("asyncpg", "sqlalchemy")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _raised_by_driver(tb: TracebackType | None) -> bool:
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith(_DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the database could not be reached.

    A refused connection or an unknown host comes out of asyncpg as a bare OSError; it counts
    only when raised inside the driver, so that a Telegram or S3 network error is not taken
    for it."""
    for error in _chain(exc):
        if isinstance(error, sa.TimeoutError):  # no pooled connection came free in time
            return True
        if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, _UNREACHABLE):
            return True
        if isinstance(error, OSError) and _raised_by_driver(error.__traceback__):
            return True
    return False
