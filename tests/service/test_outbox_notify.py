"""The API's outbox notifier: one ``NOTIFY outbox`` for many commits, on a connection of its
own, and a notifier whose connection died reconnects at the next commit."""

from __future__ import annotations

import asyncio

import asyncpg

from service_kit.db import Database, plain_dsn
from service_kit.outbox import OutboxNotifier
from service_kit.outbox.loop import NOTIFY_CHANNEL


async def _listener(url: str, heard: list[str]) -> asyncpg.Connection:
    connection = await asyncpg.connect(plain_dsn(url))
    await connection.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(args[2]))
    return connection


async def test_many_commits_make_one_notify_and_a_lost_connection_is_replaced(
    database_urls: dict[str, str],
) -> None:
    url = database_urls["activity"]
    db = Database(url)
    notifier = OutboxNotifier(db, interval=0.01)
    heard: list[str] = []
    listener = await _listener(url, heard)
    try:
        for _ in range(100):
            notifier.poke()
        await asyncio.sleep(0.3)
        assert heard == [NOTIFY_CHANNEL]

        # The server ends the notifier's connection (a restart, an idle timeout): the next
        # commit's notify fails quietly, the one after is sent on a new connection.
        await listener.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND query LIKE 'NOTIFY%'"
        )
        for _ in range(2):
            notifier.poke()
            await asyncio.sleep(0.3)
        assert heard[-1] == NOTIFY_CHANNEL and len(heard) in (2, 3)
    finally:
        await notifier.close()
        await listener.close()
        await db.dispose()


async def test_a_steady_stream_of_commits_notifies_once_per_interval(
    database_urls: dict[str, str],
) -> None:
    """The first commit after a quiet spell is told at once; while commits keep coming, at
    most one NOTIFY per interval, and one after the last of them."""
    url = database_urls["activity"]
    db = Database(url)
    notifier = OutboxNotifier(db, interval=0.1)
    heard: list[str] = []
    listener = await _listener(url, heard)
    try:
        notifier.poke()
        await asyncio.sleep(0.05)  # well inside the interval: only a NOTIFY sent at once
        assert heard == [NOTIFY_CHANNEL]

        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < 0.5:  # a commit every 2 ms
            notifier.poke()
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.3)
        # 0.5 s of commits: about 5 intervals (a 5 ms delay sent about a hundred)
        assert 2 <= len(heard) - 1 <= 8, heard
    finally:
        await notifier.close()
        await listener.close()
        await db.dispose()
