"""Cost per event as a tenant's campaigns grow: 10, 100 and 1,000 running activities.

Creates a scratch activity database on the local PostgreSQL (migrated, dropped at the
end) with N published basic activities of one tenant: a fixed five that reward a
registration (the campaigns a registration can affect) and N-5 others spread over the
other task types (account opening, certification, first deposit, deposit and trading
amounts...). Then it evaluates the same number of stored registrations in each
configuration, in deliveries of 50 as the activity worker does (events read once per
delivery, outcomes written at the end, one transaction), and prints per configuration:
events/s, the evaluating process's CPU and its PostgreSQL backend's CPU per event, and the
ratio to the 10-activity run. Each registration must earn exactly five grants.

    .venv/bin/python -m bench.campaigns [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--activities 10 100 1000] [--events 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import make_url

from activity_platform.embedded import database_url
from activity_service.activities.models import Activity
from activity_service.evaluation import service as evaluation
from bench.daily_run import drop
from bench.support import cpu_seconds
from service_kit.db import Database
from service_kit.migrations import ensure_database, upgrade

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TENANT = "bench"
AFFECTED = 5
DELIVERY = 50
OTHER_TASKS = (
    "open_account",
    "enterprise_certification",
    "first_deposit",
    "first_transfer",
    "deposit_reached",
    "net_deposit",
    "transfer_reached",
    "net_transfer_in",
)

_SEED_EVENTS = """
INSERT INTO events (id, tenant_id, event_id, type, user_id, app_id, occurred_at, payload,
                    received_by)
SELECT gen_random_uuid(), :tenant, 'reg-' || g, 'user.registered',
       'u' || lpad(g::text, 8, '0'), 'bench-app',
       CAST(:at AS timestamptz) + make_interval(secs => g), '{}'::jsonb, 'bench'
FROM generate_series(1, :events) AS g
"""


def _rule(n: int, task: str) -> dict[str, object]:
    rule: dict[str, object] = {"id": f"r{n}", "task": task, "prize_id": str(uuid.uuid4())}
    if task.endswith("_reached") or task.startswith("net_"):
        rule |= {"threshold": "10000", "currency": "HKD"}
    return rule


async def seed(db: Database, activities: int, events: int, now: datetime) -> None:
    async with db.session() as session:
        for n in range(activities):
            task = "register" if n < AFFECTED else OTHER_TASKS[n % len(OTHER_TASKS)]
            session.add(
                Activity(
                    tenant_id=TENANT,
                    seq=n + 1,
                    activity_code=f"ACT-BENCH{n:04d}",
                    business_code=f"BIZ-BENCH{n:04d}",
                    kind="basic",
                    name={"en": f"Bench {task} {n}"},
                    state="published",
                    starts_at=now - timedelta(days=7),
                    ends_at=now + timedelta(days=30),
                    attribute="unlimited",
                    issuance_form="automatic",
                    config={"timing": "real_time", "rules": [_rule(n, task)]},
                    submitter="bench",
                    published_at=now - timedelta(days=7) + timedelta(seconds=n),
                )
            )
        await session.execute(
            text(_SEED_EVENTS),
            {"tenant": TENANT, "at": now - timedelta(days=1), "events": events},
        )
        await session.execute(text("ANALYZE"))


async def evaluate_all(db: Database, events: int, now: datetime) -> float:
    """Evaluates every stored registration; returns the wall time."""
    keys = [(TENANT, f"reg-{g}") for g in range(1, events + 1)]
    began = time.perf_counter()
    for start in range(0, len(keys), DELIVERY):
        delivery = keys[start : start + DELIVERY]
        async with db.session() as session:
            await evaluation.prefetch_events(session, delivery)
            with session.no_autoflush:
                for tenant_id, event_id in delivery:
                    await evaluation.evaluate_event(
                        session, tenant_id, event_id, now=now, referral=None, defer_outcomes=True
                    )
            await evaluation.write_outcomes(session)
            await session.commit()
    return time.perf_counter() - began


async def one(pg_url: str, activities: int, events: int) -> tuple[float, float, float, bool]:
    name = f"bench_campaigns_{int(time.time())}_{activities}"
    url = database_url(pg_url, name)
    await ensure_database(url)
    try:
        await asyncio.to_thread(upgrade, "activity", url)
        db = Database(url, pool_size=1)
        try:
            now = datetime.now(UTC)
            await seed(db, activities, events, now)
            async with db.session() as session:
                backend = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
            cpu_before, pg_before = time.process_time(), cpu_seconds(backend)
            elapsed = await evaluate_all(db, events, now)
            cpu = time.process_time() - cpu_before
            pg_cpu = cpu_seconds(backend) - pg_before
            async with db.session() as session:
                grants = int(await session.scalar(text("SELECT count(*) FROM grants")) or 0)
        finally:
            await db.dispose()
    finally:
        await drop(pg_url, name)
    return elapsed, cpu, pg_cpu, grants == events * AFFECTED


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--activities", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    if make_url(args.pg_url).host not in LOCAL_HOSTS:
        raise SystemExit("benchmarks only talk to 127.0.0.1")
    events = max(DELIVERY, min(args.events, 100_000))
    first: float | None = None
    for activities in args.activities:
        activities = max(AFFECTED, min(activities, 10_000))
        elapsed, cpu, pg_cpu, ok = asyncio.run(one(args.pg_url, activities, events))
        per_event = (cpu + pg_cpu) / events * 1000
        first = first or per_event
        print(
            f"activities {activities:>5}: {events / elapsed:7.0f} events/s  "
            f"worker CPU {cpu / events * 1000:5.2f} ms/event  "
            f"PostgreSQL CPU {pg_cpu / events * 1000:5.2f} ms/event  "
            f"total {per_event:5.2f} ms/event = {per_event / first:4.2f}x the first  "
            f"{'5 grants each' if ok else 'GRANTS MISMATCH'}"
        )


if __name__ == "__main__":
    main()
