"""The events table at 10M rows: partitioned by month (as migrated today) against the
single table it replaced (the schema before the partitioning migration).

Two scratch activity databases on the local PostgreSQL, one migrated to the revision
before partitioning, one to head, each filled with the same synthetic history (``--rows``
events of ``--users`` users spread over ``--months`` months of arrival, bulk-loaded with
``generate_series``). Then, on each:

- ingest: ``--ingest`` single events through the ingestion statement of that schema (the
  product's own for the partitioned one: claim in ``event_keys``, event, outbox messages)
  from ``--connections`` connections; events/s;
- reads: a user's whole history of fact types (what evaluation and the progress endpoints
  read), and the users with money events of one day (the daily run's scan); p50/p95 ms;
- retention: dropping the oldest month (a partition) against deleting it row by row.

    .venv/bin/python -m bench.history [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--rows 10000000] [--users 200000] [--months 12] [--ingest 5000] [--connections 8]
    .venv/bin/python -m bench.history --smoke      # 20,000 rows: checks that it runs

Both databases are dropped at the end (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from activity_service.events.repository import _INSERT_ONE
from bench.support import (
    LOCAL_HOSTS,
    asyncpg_url,
    connect,
    database,
    drop_databases,
    percentile,
    plain_dsn,
)
from service_kit.migrations import ensure_database, upgrade
from service_kit.partitions.rules import add_months, bounds, month_start

BEFORE_PARTITIONING = "32c7de763755"
TENANT = "bench"
TYPES = ("user.registered", "cash.deposited", "app.login", "trade.executed")
FACT_TYPES = ["user.registered", "cash.deposited"]

# The ingestion statement of the single table (as it was before partitioning).
_INSERT_ONE_UNPARTITIONED = """
WITH ins AS (
    INSERT INTO events (id, tenant_id, event_id, type, user_id, app_id, occurred_at,
                        payload, received_by)
    VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7::jsonb, $8)
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING received_at
), outbox AS (
    INSERT INTO outbox_messages (id, queue, job_name, job_id, payload, attempts)
    SELECT gen_random_uuid(), m.queue, m.job_name, m.job_id, m.payload, 0
    FROM jsonb_to_recordset($9::jsonb) AS m(
        queue text, job_name text, job_id text, payload jsonb)
    CROSS JOIN ins
)
SELECT received_at FROM ins
"""

_HISTORY = (
    "SELECT type, event_id, occurred_at, payload FROM events WHERE tenant_id = $1 "
    "AND user_id = $2 AND type = ANY($3::text[]) ORDER BY occurred_at, event_id"
)
_WINDOW = (
    "SELECT DISTINCT user_id FROM events WHERE tenant_id = $1 AND type = ANY($2::text[]) "
    "AND occurred_at >= $3 AND occurred_at < $4 ORDER BY user_id"
)


def _fill_sql(partitioned: bool) -> str:
    """One chunk of synthetic history: rows $1..$2 of the series, arrival spread over the
    months from $3 ($4 of them), business time a little before arrival."""
    received = "$3::timestamptz + (i % ($4 * 28)) * interval '1 day' + (i % 86400) * interval '1 s'"
    columns = (
        "id, tenant_id, event_id, type, user_id, app_id, occurred_at, payload, received_by, "
        "received_at"
    )
    rows = f"""
        SELECT gen_random_uuid(), '{TENANT}', 'e' || i,
               (ARRAY{list(TYPES)!r})[1 + i % {len(TYPES)}],
               'u' || (i % $5), 'broker-app', ({received}) - interval '1 hour',
               jsonb_build_object('amount', (i % 1000)::text, 'currency', 'HKD'),
               'bench', {received}
        FROM generate_series($1::bigint, $2::bigint) AS i
    """
    events = f"INSERT INTO events ({columns}) {rows}"
    if not partitioned:
        return events
    return (
        f"WITH e AS ({events} RETURNING tenant_id, event_id, received_at) "
        "INSERT INTO event_keys (tenant_id, event_id, received_at) SELECT * FROM e"
    )


async def fill(dsn: str, partitioned: bool, args: argparse.Namespace, first: datetime) -> float:
    conn = await connect(dsn)
    started = time.perf_counter()
    try:
        await conn.execute("SET synchronous_commit = off")
        sql = _fill_sql(partitioned)
        chunk = 200_000
        for start in range(0, args.rows, chunk):
            end = min(args.rows, start + chunk) - 1
            await conn.execute(sql, start, end, first, args.months, args.users)
        await conn.execute("ANALYZE events")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def ingest(dsn: str, partitioned: bool, args: argparse.Namespace) -> float:
    statement = _INSERT_ONE if partitioned else _INSERT_ONE_UNPARTITIONED
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(args.ingest):
        queue.put_nowait(i)
    run = uuid.uuid4().hex[:8]
    message = [{"queue": "activity", "job_name": "activity.evaluate_event", "job_id": "x"}]

    async def sender() -> None:
        conn = await connect(dsn)
        try:
            while not queue.empty():
                i = queue.get_nowait()
                event_id = f"in-{run}-{i}"
                await conn.fetchval(
                    statement,
                    TENANT,
                    event_id,
                    "cash.deposited",
                    f"u{random.randrange(args.users)}",
                    "broker-app",
                    datetime.now(UTC),
                    json.dumps({"amount": "10", "currency": "HKD"}),
                    "bench",
                    json.dumps([{**message[0], "job_id": event_id, "payload": {}}]),
                )
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(args.connections)))
    return args.ingest / (time.perf_counter() - started)


async def reads(dsn: str, args: argparse.Namespace, first: datetime) -> dict[str, float]:
    conn = await connect(dsn)
    try:
        history, window = [], []
        for _ in range(args.reads):
            user = f"u{random.randrange(args.users)}"
            started = time.perf_counter()
            await conn.fetch(_HISTORY, TENANT, user, FACT_TYPES)
            history.append((time.perf_counter() - started) * 1000)
        for _ in range(max(5, args.reads // 20)):
            day = first + timedelta(days=random.randrange(args.months * 28))
            started = time.perf_counter()
            await conn.fetch(_WINDOW, TENANT, ["cash.deposited"], day, day + timedelta(days=1))
            window.append((time.perf_counter() - started) * 1000)
        return {
            "history_p50_ms": percentile(history, 50),
            "history_p95_ms": percentile(history, 95),
            "day_p50_ms": percentile(window, 50),
            "day_p95_ms": percentile(window, 95),
        }
    finally:
        await conn.close()


async def retention(dsn: str, partitioned: bool, first: datetime) -> float:
    """Seconds to remove the oldest month of history."""
    conn = await connect(dsn)
    month = month_start(first)
    start, end = bounds(month)
    try:
        started = time.perf_counter()
        if partitioned:
            await conn.execute(f"DROP TABLE events_p{month.year:04d}{month.month:02d}")
        else:
            await conn.execute(
                "DELETE FROM events WHERE received_at >= $1 AND received_at < $2", start, end
            )
        return time.perf_counter() - started
    finally:
        await conn.close()


async def prepare(url: str, revision: str) -> None:
    await ensure_database(url)
    await asyncio.to_thread(upgrade, "activity", url, revision)


async def run(args: argparse.Namespace) -> None:
    run_id = uuid.uuid4().hex[:6]
    names = {
        "single": f"bench_history_{run_id}_single",
        "partitioned": f"bench_history_{run_id}_part",
    }
    urls = {kind: database(args.pg_url, name) for kind, name in names.items()}
    # History arrives over the last --months months, up to this one (whose partitions the
    # migration made; older ones are made here as the maintenance job would have).
    first = datetime.combine(
        add_months(month_start(datetime.now(UTC)), -(args.months - 1)), datetime.min.time(), UTC
    )
    results: dict[str, dict[str, Any]] = {}
    try:
        await prepare(urls["single"], BEFORE_PARTITIONING)
        await prepare(urls["partitioned"], "head")
        part_dsn = plain_dsn(urls["partitioned"])
        conn = await connect(part_dsn)
        try:
            for i in range(args.months + 1):
                month = add_months(month_start(first), i)
                start, end = bounds(month)
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS events_p{month.year:04d}{month.month:02d} "
                    f"PARTITION OF events FOR VALUES FROM ('{start.isoformat()}') "
                    f"TO ('{end.isoformat()}')"
                )
        finally:
            await conn.close()
        for kind, url in urls.items():
            dsn = plain_dsn(url)
            partitioned = kind == "partitioned"
            row: dict[str, Any] = {"load_s": await fill(dsn, partitioned, args, first)}
            row["ingest_per_s"] = await ingest(dsn, partitioned, args)
            row.update(await reads(dsn, args, first))
            row["drop_month_s"] = await retention(dsn, partitioned, first)
            results[kind] = row
            print(f"{kind}: {row}", flush=True)
    finally:
        if not args.keep:
            await asyncio.to_thread(drop_databases, args.pg_url, list(names.values()))
    print(
        f"\nevents table, {args.rows:,} rows, {args.users:,} users, {args.months} months "
        f"({args.connections} ingest connections)"
    )
    header = f"{'':12} {'ingest/s':>9} {'history p50/p95 ms':>19} {'day p50/p95 ms':>15}"
    print(header + f" {'drop a month s':>15} {'load s':>8}")
    for kind, row in results.items():
        print(
            f"{kind:12} {row['ingest_per_s']:9.0f} "
            f"{row['history_p50_ms']:9.2f}/{row['history_p95_ms']:<9.2f} "
            f"{row['day_p50_ms']:7.1f}/{row['day_p95_ms']:<7.1f} "
            f"{row['drop_month_s']:15.3f} {row['load_s']:8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--ingest", type=int, default=5_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="20,000 rows, to check it runs")
    args = parser.parse_args()
    from sqlalchemy.engine import make_url

    if make_url(asyncpg_url(args.pg_url)).host not in LOCAL_HOSTS:
        raise SystemExit("benchmarks only talk to 127.0.0.1")
    if args.smoke:
        args.rows, args.users, args.ingest, args.reads = 20_000, 2_000, 300, 50
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
