"""Which failures are transient: a dependency (PostgreSQL, Redis, another service) was
unreachable or interrupted, or the database chose this transaction as a deadlock or
serialization victim. Such work is retried later, never dropped; anything else is a bug or
bad data and is reported."""

from __future__ import annotations

import asyncpg
import httpx
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa_errors

_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    sa_errors.DisconnectionError,
    sa_errors.TimeoutError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    httpx.TransportError,
)


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same work later may succeed."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _TRANSIENT_TYPES):
            return True
        if isinstance(current, sa_errors.DBAPIError):
            if current.connection_invalidated:
                return True
            if current.orig is not None and is_transient(current.orig):
                return True
            # asyncpg errors reach SQLAlchemy wrapped in its adapter's exception classes,
            # which keep the SQLSTATE: connection (08…), shutdown (57P…), deadlock,
            # serialization and too many connections are all worth another try.
            sqlstate = getattr(current.orig, "sqlstate", None) or ""
            if sqlstate.startswith(("08", "57P", "53300", "40001", "40P01")):
                return True
        current = current.__cause__ or current.__context__
    return False
