"""The ingestion connection pool: the hot path of ``POST /v1/events``.

Storing one event is a single statement (the event and its outbox messages in one CTE), so
it is atomic on its own and runs in autocommit on a plain asyncpg connection: no
BEGIN/COMMIT round trips, no pre-ping, no ORM unit of work. A dead connection surfaces as a
503 the sender retries, and the event id makes the retry safe. Everything else (jobs,
batches, reads) uses the shared SQLAlchemy sessions.
"""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI, Request

from service_kit.db import plain_dsn


class IngestConnection(asyncpg.Connection):  # type: ignore[misc]
    """Nothing to reset when a connection goes back to the pool: the ingest path runs single
    autocommit statements and never sets session state, so asyncpg's reset query (advisory
    unlock, CLOSE ALL, UNLISTEN, RESET ALL) would be a round trip per event for nothing."""

    def get_reset_query(self) -> str:
        return ""


async def open_ingest_pool(app: FastAPI) -> None:
    """Opens no connection yet (``min_size=0``), so the service starts while PostgreSQL is
    down; a connection that cannot be made or is lost surfaces as a connection error, which
    the API answers with 503 and ``Retry-After`` (``service_kit.errors``)."""
    settings = app.state.settings
    app.state.ingest_pool = await asyncpg.create_pool(
        plain_dsn(settings.database_url),
        min_size=0,
        max_size=settings.db_pool_size,
        max_inactive_connection_lifetime=300,
        timeout=settings.db_connect_timeout_seconds,
        connection_class=IngestConnection,
    )


async def close_ingest_pool(app: FastAPI) -> None:
    pool = getattr(app.state, "ingest_pool", None)
    if pool is not None:
        await pool.close()


async def ingest_pool(request: Request) -> asyncpg.Pool:
    """The pool itself, not a connection dependency: the endpoint holds a connection only
    for its one statement (and a generator dependency costs the hot path an exit stack)."""
    pool = getattr(request.app.state, "ingest_pool", None)
    if pool is None:  # an app built without the startup hook
        await open_ingest_pool(request.app)
        pool = request.app.state.ingest_pool
    return pool


def wake_relay(request: Request) -> None:
    """The ingest connection writes outbox messages outside any session: say so."""
    notifier = getattr(request.app.state, "outbox_notifier", None)
    if notifier is not None:
        notifier.poke()
