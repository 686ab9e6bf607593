"""The API's outbox notifier: one ``NOTIFY outbox`` for many commits, on a connection of its
own, and a notifier whose connection died reconnects at the next commit."""

from __future__ import annotations

import asyncio

import asyncpg

from service_kit.db import Database, plain_dsn
from service_kit.outbox import OutboxNotifier
from service_kit.outbox.loop import NOTIFY_CHANNEL


async def _listener(url: str, heard: list[int]) -> asyncpg.Connection:
    """Hears the backend pid of every ``NOTIFY outbox`` in the database: another test's
    process notifying the same database is told apart from the notifier under test."""
    connection = await asyncpg.connect(plain_dsn(url))
    await connection.add_listener(NOTIFY_CHANNEL, lambda _c, pid, _ch, _p: heard.append(pid))
    return connection


def _notifier_pid(notifier: OutboxNotifier) -> int:
    return int(notifier._connection.get_server_pid())


async def test_many_commits_make_one_notify_and_a_lost_connection_is_replaced(
    database_urls: dict[str, str],
) -> None:
    url = database_urls["activity"]
    db = Database(url)
    notifier = OutboxNotifier(db, interval=0.01)
    heard: list[int] = []
    listener = await _listener(url, heard)
    try:
        for _ in range(100):
            notifier.poke()
        await asyncio.sleep(0.3)
        first = _notifier_pid(notifier)
        assert heard.count(first) == 1

        # The server ends the notifier's connection (a restart, an idle timeout): the next
        # commit's notify fails quietly, the one after is sent on a new connection.
        await listener.execute("SELECT pg_terminate_backend($1)", first)
        for _ in range(2):
            notifier.poke()
            await asyncio.sleep(0.3)
        second = _notifier_pid(notifier)
        assert second != first and heard[-1] == second
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
    heard: list[int] = []
    listener = await _listener(url, heard)
    try:
        notifier.poke()
        await asyncio.sleep(0.05)  # well inside the interval: only a NOTIFY sent at once
        pid = _notifier_pid(notifier)
        assert heard.count(pid) == 1

        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < 0.5:  # a commit every 2 ms
            notifier.poke()
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.3)
        # 0.5 s of commits: about 5 intervals (a 5 ms delay sent about a hundred)
        assert 2 <= heard.count(pid) - 1 <= 8, heard
    finally:
        await notifier.close()
        await listener.close()
        await db.dispose()


async def test_a_notify_waiting_for_its_interval_is_dropped_at_close(
    database_urls: dict[str, str],
) -> None:
    """A closed notifier opens no connection: a commit just before shutdown would otherwise
    reconnect after the application's pool was disposed."""
    url = database_urls["activity"]
    db = Database(url)
    notifier = OutboxNotifier(db, interval=0.2)
    heard: list[int] = []
    listener = await _listener(url, heard)
    try:
        notifier.poke()
        await asyncio.sleep(0.05)
        pid = _notifier_pid(notifier)
        notifier.poke()  # waits for the rest of the interval
        await notifier.close()
        notifier.poke()
        await asyncio.sleep(0.4)
        assert heard.count(pid) == 1
        assert notifier._connection is None
    finally:
        await notifier.close()
        await listener.close()
        await db.dispose()
