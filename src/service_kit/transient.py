"""Which failures are transient. Two questions, one place:

- ``is_unreachable``: PostgreSQL or Redis cannot be reached right now (refused, reset, timed
  out, shutting down, no pooled connection came free) — an API answers 503 with
  ``Retry-After`` instead of 500;
- ``is_transient``: retrying the same work later may succeed — a dependency unreachable, an
  HTTP call to another service that did not get through, or the database choosing this
  transaction as a deadlock or serialization victim. Jobs retry such work, never drop it;
  anything else is a bug or bad data and is reported.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import asyncpg
import httpx
import redis.exceptions
import sqlalchemy.exc

UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
    sqlalchemy.exc.DisconnectionError,
)

RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    httpx.TransportError,
)
# SQLSTATEs of a transaction chosen as a victim: serialization failure, deadlock.
_VICTIM_STATES = ("40001", "40P01")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (SQLAlchemy's ``orig``) and what caused it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, sqlalchemy.exc.DBAPIError) and isinstance(
            current.orig, BaseException
        ):
            pending.append(current.orig)
        pending.append(current.__cause__ or current.__context__)


def _any(exc: BaseException, test: Callable[[BaseException], bool]) -> bool:
    return any(test(e) for e in _chain(exc))


def _unreachable_here(exc: BaseException) -> bool:
    if isinstance(exc, UNREACHABLE):
        return True
    return isinstance(exc, sqlalchemy.exc.DBAPIError) and (
        exc.connection_invalidated
        or isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError)
    )


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a lost or refused database/Redis connection."""
    return _any(exc, _unreachable_here)


def _retryable_here(exc: BaseException) -> bool:
    if _unreachable_here(exc) or isinstance(exc, RETRYABLE):
        return True
    return getattr(exc, "sqlstate", None) in _VICTIM_STATES


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same work later may succeed."""
    return _any(exc, _retryable_here)
