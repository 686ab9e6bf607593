"""Daily run throughput: how many users per second does the daily run decide?

Creates a scratch activity database on the local PostgreSQL (migrated, dropped at the end),
seeds N users with one deposit yesterday (inserted straight into the events table with one
SQL statement) and 1 or more published basic activities with a cumulative amount task
(deposit reached or net deposit, real-time timing) that the deposit reaches, then runs the
daily run of yesterday in-process, as the worker job does, continuing while it reports its
time budget spent. Prints users/s (and user-activity decisions/s) per configuration and the
grants made, checks that every user got exactly one grant per activity, and that running the
day again grants nothing. Prints the machine's load average before and after each
configuration (the machine may be shared) and what 1M users would take at the measured rate.

    .venv/bin/python -m bench.daily_run [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--users 10000 100000] [--activities 1 10] [--chunk 1000] [--cap] [--no-rerun]

    # the goal's size: 1M users, 10 activities (seeding alone takes a minute or two)
    .venv/bin/python -m bench.daily_run --users 1000000 --activities 10 --no-rerun
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from activity_platform.embedded import database_url
from activity_service.activities.models import Activity
from activity_service.evaluation import daily_run
from service_kit.clock import FrozenClock
from service_kit.db import Database
from service_kit.migrations import ensure_database, upgrade

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TENANT = "bench"
ZONE = ZoneInfo("Asia/Hong_Kong")
TASKS = ("deposit_reached", "net_deposit")

_SEED_EVENTS = """
INSERT INTO events (id, tenant_id, event_id, type, user_id, app_id, occurred_at, payload,
                    received_by)
SELECT gen_random_uuid(), :tenant, 'dep-' || g, 'cash.deposited',
       'u' || lpad(g::text, 8, '0'), 'bench-app',
       CAST(:at AS timestamptz) + make_interval(secs => g % 36000),
       jsonb_build_object('amount', '20000', 'currency', 'HKD'), 'bench'
FROM generate_series(1, :users) AS g
"""


async def drop(pg_url: str, name: str) -> None:
    engine = create_async_engine(
        make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def seed(db: Database, users: int, activities: int, day: date, cap: bool) -> None:
    day_start = datetime.combine(day, datetime.min.time(), ZONE)
    now = datetime.now(UTC)
    async with db.session() as session:
        await session.execute(
            text(_SEED_EVENTS),
            {"tenant": TENANT, "at": day_start + timedelta(hours=8), "users": users},
        )
        for n in range(activities):
            prize = str(uuid.uuid4())
            config = {
                "timing": "real_time",
                "rules": [
                    {
                        "id": f"r{n}",
                        "task": TASKS[n % len(TASKS)],
                        "threshold": "10000",
                        "currency": "HKD",
                        "prize_id": prize,
                    }
                ],
            }
            if cap:
                config["prize_limits"] = [{"prize_id": prize, "max_per_user": 1}]
            session.add(
                Activity(
                    tenant_id=TENANT,
                    seq=n + 1,
                    activity_code=f"ACT-BENCH{n:03d}",
                    business_code=f"BIZ-BENCH{n:03d}",
                    kind="basic",
                    name={"en": f"Bench deposit {n}"},
                    state="published",
                    starts_at=day_start - timedelta(days=7),
                    ends_at=day_start + timedelta(days=30),
                    attribute="unlimited",
                    issuance_form="automatic",
                    config=config,
                    submitter="bench",
                    published_at=now + timedelta(seconds=n),
                )
            )
        await session.execute(text("ANALYZE events"))


async def count_grants(db: Database) -> tuple[int, int, int]:
    async with db.session() as session:
        grants = await session.scalar(text("SELECT count(*) FROM grants"))
        pairs = await session.scalar(
            text("SELECT count(*) FROM (SELECT DISTINCT activity_id, user_id FROM grants) p")
        )
        outbox = await session.scalar(text(_ANNOUNCED))
    return int(grants or 0), int(pairs or 0), int(outbox or 0)


# The grant keys the run's messages announce: each bundle's rows (key first), or the key
# of a message of one grant.
_ANNOUNCED = """
SELECT count(DISTINCT k) FROM (
    SELECT jsonb_array_elements(payload -> 'grants') ->> 0 AS k FROM outbox_messages
    WHERE job_name = 'reward.create_from_grant' AND payload ? 'grants'
    UNION ALL
    SELECT payload ->> 'grant_key' FROM outbox_messages
    WHERE job_name = 'reward.create_from_grant' AND NOT payload ? 'grants'
) AS announced
"""


async def run_day(db: Database, day: date, clock: FrozenClock, chunk: int) -> tuple[float, int]:
    began = time.perf_counter()
    granted, parts = 0, 0
    while True:
        result = await daily_run.run_daily(
            db, TENANT, day, clock, None, budget_seconds=12.0, chunk_size=chunk
        )
        granted += result.grants
        parts += 1
        if result.done:
            break
    return time.perf_counter() - began, granted


def _load() -> str:
    return "/".join(f"{n:.1f}" for n in os.getloadavg())


async def one(
    pg_url: str, users: int, activities: int, chunk: int, cap: bool, rerun: bool = True
) -> None:
    name = f"bench_daily_{int(time.time())}_{users}_{activities}"
    url = database_url(pg_url, name)
    await ensure_database(url)
    try:
        await asyncio.to_thread(upgrade, "activity", url)
        # the run reads the next chunk while it writes two: one connection each
        db = Database(url, pool_size=3)
        try:
            clock = FrozenClock(datetime.now(UTC))
            day = clock.now().astimezone(ZONE).date() - timedelta(days=1)
            await seed(db, users, activities, day, cap)
            load_before = _load()
            elapsed, granted = await run_day(db, day, clock, chunk)
            load_after = _load()
            grants, pairs, outbox = await count_grants(db)
            again_elapsed, again = await run_day(db, day, clock, chunk)
            redo_elapsed, redo = 0.0, 0
            if rerun:
                # a finished day is skipped; deciding it from scratch again grants nothing
                async with db.session() as session:
                    await session.execute(text("DELETE FROM daily_runs"))
                redo_elapsed, redo = await run_day(db, day, clock, chunk)
        finally:
            await db.dispose()
    finally:
        await drop(pg_url, name)
    expected = users * activities
    ok = grants == pairs == outbox == expected == granted and again == 0 and redo == 0
    print(
        f"users {users:>7} x activities {activities:>2}: {elapsed:6.2f} s  "
        f"{users / elapsed:8.0f} users/s  {expected / elapsed:8.0f} decisions/s  "
        f"grants {granted} (stored {grants}, announced {outbox})  "
        + (f"re-run from scratch {redo_elapsed:.2f} s grants {redo}  " if rerun else "")
        + f"1M users at this rate: {1_000_000 / (users / elapsed) / 60:4.1f} min (goal < 5)  "
        f"load average {load_before} -> {load_after}  "
        f"{'exactly once' if ok else 'MISMATCH'}",
        flush=True,
    )
    del again_elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--activities", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--chunk", type=int, default=daily_run.CHUNK_SIZE)
    parser.add_argument("--cap", action="store_true", help="a per-user cap on each prize")
    parser.add_argument(
        "--no-rerun",
        dest="rerun",
        action="store_false",
        help="skip deciding the day again from scratch (halves the time at 1M users)",
    )
    args = parser.parse_args()
    if make_url(args.pg_url).host not in LOCAL_HOSTS:
        raise SystemExit("benchmarks only talk to 127.0.0.1")
    for users in args.users:
        for activities in args.activities:
            asyncio.run(
                one(
                    args.pg_url,
                    max(1, min(users, 1_000_000)),
                    max(1, min(activities, 50)),
                    max(1, args.chunk),
                    args.cap,
                    args.rerun,
                )
            )


if __name__ == "__main__":
    main()
