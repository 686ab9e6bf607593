"""The relay loop of a worker and what wakes it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from arq.connections import ArqRedis

from service_kit.db import Database, plain_dsn
from service_kit.outbox.models import OutboxMessageMixin
from service_kit.outbox.relay import relay_pass
from service_kit.outbox.sweep import confirm_deliveries, count_backlog, delete_old_delivered

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "outbox"
HELD_BACK_POLL_SECONDS = 0.05
# Connecting or notifying longer than this gives up until the next poke.
NOTIFY_TIMEOUT = 2.0


class OutboxNotifier:
    """Tells the relays of this database that messages were committed: the first commit
    after a quiet spell at once, then at most one ``NOTIFY outbox`` per ``interval`` however
    many transactions committed meanwhile (the last of them is always followed by one).

    Not a trigger on insert: every NOTIFY takes a database-wide lock at commit, which cut
    single-event ingest to a third under load. A NOTIFY per 5 ms still cost a busy API a
    tenth of its CPU; one per ``interval`` wakes a relay that has nothing to do as soon as
    before, and one that is busy finds the new rows on its next pass anyway. A lost one only
    means the relay's next poll. It is sent on a connection of its own in autocommit: one
    round trip, where a pooled session's checkout, ping, BEGIN and COMMIT cost more."""

    def __init__(self, db: Database, interval: float = 0.025) -> None:
        self.dsn = plain_dsn(db.url)
        self.interval = interval
        self._scheduled = False
        self._closed = False
        self._last_sent = float("-inf")
        self._connection: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._sending = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def poke(self) -> None:
        if self._scheduled or self._closed:
            return
        self._scheduled = True
        loop = asyncio.get_running_loop()
        wait = self._last_sent + self.interval - loop.time()
        if wait <= 0:
            self._start()
        else:
            self._timer = loop.call_later(wait, self._start)

    def _start(self) -> None:
        self._timer = None
        if self._closed:
            return
        task = asyncio.ensure_future(self._notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self) -> None:
        self._scheduled = False
        self._last_sent = asyncio.get_running_loop().time()
        async with self._sending:
            try:
                if self._connection is None or self._connection.is_closed():
                    self._connection = await asyncpg.connect(self.dsn, timeout=NOTIFY_TIMEOUT)
                await self._connection.execute(f"NOTIFY {NOTIFY_CHANNEL}")
            except Exception as exc:  # the relay polls anyway
                log.debug("outbox: NOTIFY failed: %s", exc)
                await self._disconnect()

    async def close(self) -> None:
        """At shutdown: a NOTIFY still waiting for its interval is dropped (it would
        otherwise open a connection after the pool was disposed) and the connection closed."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._disconnect()

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=NOTIFY_TIMEOUT)


class Wakeup:
    """Wakes the relay as soon as a transaction with outbox rows commits: in-process
    ``set()`` for the worker's own jobs, ``LISTEN outbox`` for the API processes (see
    ``OutboxNotifier``). Polling stays the real path; a lost listener connection only means
    waiting for the next poll."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._connection: Any = None

    def set(self, *_: Any) -> None:
        self.event.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()

    async def listen(self, db: Database) -> None:
        if self._connection is not None and not self._connection.is_closed():
            return
        try:
            raw = await db.engine.raw_connection()
            driver = raw.driver_connection  # the asyncpg connection
            assert driver is not None
            await driver.add_listener(NOTIFY_CHANNEL, self.set)
            raw.detach()  # never returned to the pool: it stays listening
            self._connection = driver
        except Exception:
            log.info("outbox: LISTEN unavailable; polling only", exc_info=True)

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed():
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._connection = None


async def relay_forever(
    db: Database,
    model: type[OutboxMessageMixin],
    redis: ArqRedis,
    prefix: str,
    poll_seconds: float = 0.5,
    batch_size: int = 1000,
    *,
    max_per_job: int = 100,
    sweep_seconds: float = 1.0,
    grace_seconds: float = 2.0,
    wakeup: Wakeup | None = None,
) -> None:
    """Send owed messages as soon as they are committed (or at the latest every
    ``poll_seconds``) and sweep in-flight ones every ``sweep_seconds``. Failures back off
    and retry, never drop."""
    loop = asyncio.get_running_loop()
    wakeup = wakeup or Wakeup()
    backoff = poll_seconds
    next_sweep = loop.time()
    next_cleanup = loop.time() + 60
    next_count = loop.time()
    try:
        while True:
            try:
                await wakeup.listen(db)
                done = await relay_pass(db, model, redis, prefix, batch_size, max_per_job)
                if loop.time() >= next_sweep:
                    await confirm_deliveries(db, model, redis, prefix, grace_seconds=grace_seconds)
                    next_sweep = loop.time() + sweep_seconds
                if loop.time() >= next_count:
                    await count_backlog(db, model)
                    next_count = loop.time() + 15
                if loop.time() >= next_cleanup:
                    await delete_old_delivered(db, model)
                    next_cleanup = loop.time() + 600
                # While a consumer is behind, look again soon: it takes a bigger batch as
                # soon as its queue is short again.
                backoff = HELD_BACK_POLL_SECONDS if done.held_back else poll_seconds
                if done.sent >= batch_size:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay failed; retrying: %s", exc)
                await wakeup.close()
                backoff = min(backoff * 2, 5.0)
                await asyncio.sleep(backoff)
                continue
            await wakeup.wait(min(backoff, max(0.0, next_sweep - loop.time()) + 0.01))
    finally:
        await wakeup.close()
