"""Dry-run throughput: how long does a dry-run over 30 days of N users' events take?

Creates scratch activity and referral databases on the local PostgreSQL (migrated, dropped
at the end) and seeds, with set-based SQL, N users' events of a 30-day period that ended
yesterday: a registration each, an account opening for every other user, three deposits
each on different days (4.5 events per user), and every user's registration inviter
(one of N/20 inviters) in the referral database. Then dry-runs, in-process as the endpoint
does, two drafts over the period:

- basic: register, open account, deposit reached 10k and 50k HKD (tiers), with a total
  quantity on one prize and a budget that runs out before the period ends;
- referral (regular, tiered: ranges 1–10 with a bonus on entering and 11+, an invitee prize,
  a per-user cap): the effective inviters asked of the referral service over HTTP (its app
  served in-process through an ASGI transport, 1,000 invitees per question).

Prints seconds, users/s, grants, refusals and the limits that bit per kind. Goal: 30 days
of 100k users in < 10 s.

    .venv/bin/python -m bench.dry_run [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--users 100000] [--kinds basic referral]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from activity_platform.embedded import database_url
from activity_platform.services import SERVICES
from activity_service.activities.models import Activity
from activity_service.evaluation.dry_run import dry_run
from activity_service.evaluation.engine import Window
from activity_service.evaluation.referral_bulk import InviterDirectory
from activity_service.tenants.service import tenant_context
from service_kit.db import Database
from service_kit.http import ServiceClient
from service_kit.migrations import ensure_database, upgrade

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TENANT = "bench"
ZONE = ZoneInfo("Asia/Hong_Kong")
DAYS = 30
REFERRAL_URL = "http://referral.bench"
INVITEES_PER_INVITER = 20

_SEED_EVENTS = """
INSERT INTO events (id, tenant_id, event_id, type, user_id, app_id, occurred_at, payload,
                    received_by)
SELECT gen_random_uuid(), :tenant, e.type || '-' || g || '-' || e.k, e.type,
       'u' || lpad(g::text, 8, '0'), 'bench-app',
       CAST(:start AS timestamptz) + make_interval(days => e.day, secs => g % 36000 + e.k),
       e.payload, 'bench'
FROM generate_series(1, :users) AS g
CROSS JOIN LATERAL (
    SELECT 'user.registered' AS type, 0 AS k, g % 10 AS day, '{}'::jsonb AS payload
    UNION ALL
    SELECT 'account.opened', 0, g % 10 + 1, '{}'::jsonb WHERE g % 2 = 0
    UNION ALL
    SELECT 'cash.deposited', k, g % 10 + 2 + k * 6,
           jsonb_build_object('amount', (4000 + (g * 7 + k * 3) % 23 * 1000)::text,
                              'currency', 'HKD')
    FROM generate_series(1, 3) AS k
) AS e
"""

_SEED_BINDINGS = """
INSERT INTO bindings (id, tenant_id, invitee_id, inviter_id, node, channel, app_id, bound_at)
SELECT gen_random_uuid(), :tenant, 'u' || lpad(g::text, 8, '0'),
       'inviter-' || (g % :inviters), 'registration', 'invite_code', 'bench-app',
       CAST(:start AS timestamptz) + make_interval(days => g % 10)
FROM generate_series(1, :users) AS g
"""


async def drop(pg_url: str, name: str) -> None:
    engine = create_async_engine(
        make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


def _cost(prizes: list[str]) -> dict[str, Any]:
    return {p: {"amount": "10", "currency": "HKD"} for p in prizes}


def configs(users: int) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """kind → (attribute, config) of the drafts dry-run."""
    p = [str(uuid.uuid4()) for _ in range(6)]
    basic = {
        "timing": "real_time",
        "rules": [
            {"id": "reg", "task": "register", "prize_id": p[0]},
            {"id": "open", "task": "open_account", "prize_id": p[1]},
            *(
                {
                    "id": f"d{v // 1000}k",
                    "task": "deposit_reached",
                    "threshold": str(v),
                    "currency": "HKD",
                    "prize_id": prize,
                }
                for v, prize in ((10_000, p[2]), (50_000, p[3]))
            ),
        ],
        "prize_totals": [{"prize_id": p[1], "total_quantity": users // 5}],
        # about three quarters of the grants' cost: the budget runs out late in the period
        "budget": {"amount": str(users * 25), "currency": "HKD"},
        "prize_costs": _cost(p[:4]),
    }
    tiers = [
        {"id": "t1", "min_invites": 1, "max_invites": 10, "prize_id": p[0], "bonus_prize_id": p[4]},
        {"id": "t2", "min_invites": 11, "max_invites": None, "prize_id": p[5]},
    ]
    referral = {
        "reward_type": "tiered",
        "rules": [
            {"id": "reg", "task": "register", "invitee_prize_id": p[1], "tiers": tiers},
            {
                "id": "dep",
                "task": "deposit_reached",
                "threshold": "30000",
                "currency": "HKD",
                "tiers": tiers,
            },
        ],
        "prize_limits": [{"prize_id": p[0], "max_per_user": 15}],
    }
    return {"basic": ("unlimited", basic), "referral": ("regular", referral)}


async def seed(
    activity_db: Database, referral_db: Database | None, users: int, start: datetime
) -> list[Activity]:
    now = datetime.now(UTC)
    drafts = []
    async with activity_db.session() as session:
        await session.execute(
            text(_SEED_EVENTS), {"tenant": TENANT, "start": start, "users": users}
        )
        for n, (kind, (attribute, config)) in enumerate(configs(users).items()):
            draft = Activity(
                tenant_id=TENANT,
                seq=n + 1,
                activity_code=f"ACT-BENCH{n:03d}",
                business_code=f"BIZ-BENCH{n:03d}",
                kind=kind,
                name={"en": f"Bench {kind}"},
                state="draft",
                starts_at=start,
                ends_at=start + timedelta(days=DAYS),
                attribute=attribute,
                issuance_form="automatic",
                config=config,
                submitter="bench",
                created_at=now,
            )
            session.add(draft)
            drafts.append(draft)
        await session.execute(text("ANALYZE events"))
    if referral_db is not None:
        async with referral_db.session() as session:
            await session.execute(
                text(_SEED_BINDINGS),
                {
                    "tenant": TENANT,
                    "start": start,
                    "users": users,
                    "inviters": max(1, users // INVITEES_PER_INVITER),
                },
            )
            await session.execute(text("ANALYZE bindings"))
    return drafts


async def one(pg_url: str, redis_url: str, users: int, kinds: list[str]) -> None:
    stamp = int(time.time())
    names = {"activity": f"bench_dry_run_{stamp}_a", "referral": f"bench_dry_run_{stamp}_r"}
    urls = {service: database_url(pg_url, name) for service, name in names.items()}
    for service, url in urls.items():
        await ensure_database(url)
        await asyncio.to_thread(upgrade, service, url)
    try:
        activity_db = Database(urls["activity"], pool_size=2)
        referral_db = Database(urls["referral"], pool_size=2)
        today = (
            datetime.now(UTC).astimezone(ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
        )
        start = today - timedelta(days=DAYS + 1)
        window = Window(start, start + timedelta(days=DAYS))
        began = time.perf_counter()
        drafts = await seed(activity_db, referral_db, users, start)
        async with activity_db.session() as session:
            events = int(await session.scalar(text("SELECT count(*) FROM events")) or 0)
            tenant = await tenant_context(session, TENANT)
        print(
            f"seeded {users:,} users, {events:,} events over {DAYS} days in "
            f"{time.perf_counter() - began:.1f} s"
        )
        referral_settings = SERVICES["referral"].settings(
            database_url=urls["referral"], redis_url=redis_url, dev_mode=True, db_pool_size=4
        )
        referral_app = SERVICES["referral"].create_app(settings=referral_settings)
        activity_settings = SERVICES["activity"].settings(
            database_url=urls["activity"],
            redis_url=redis_url,
            dev_mode=True,
            referral_url=REFERRAL_URL,
        )
        http = ServiceClient(
            activity_settings, mounts={REFERRAL_URL: httpx.ASGITransport(app=referral_app)}
        )
        try:
            async with referral_app.router.lifespan_context(referral_app):
                for draft in drafts:
                    if draft.kind not in kinds:
                        continue
                    directory = InviterDirectory(http, REFERRAL_URL)
                    began, cpu = time.perf_counter(), time.process_time()
                    report = await dry_run(activity_db, draft, tenant, window, users, directory)
                    elapsed = time.perf_counter() - began
                    cpu = time.process_time() - cpu
                    bites = ", ".join(
                        f"{b.limit}{'' if b.prize_id is None else ' ' + b.prize_id[:8]}: "
                        f"{b.refused:,} refused ({len(b.users):,} users, first "
                        f"{b.first_at:%m-%d %H:%M})"
                        for b in report.bites.values()
                        if b.first_at is not None
                    )
                    print(
                        f"{draft.kind:>8}: {elapsed:6.2f} s (this process's CPU {cpu:.2f} s, "
                        f"load {os.getloadavg()[0]:.1f})  "
                        f"{report.users_evaluated / elapsed:8,.0f} users/s  "
                        f"users {report.users_evaluated:,}  grants {len(report.grants):,}  "
                        f"refused {dict(report.refused)}  "
                        f"{'goal met' if elapsed < 10 else 'over the 10 s goal'}"
                    )
                    if bites:
                        print(f"          limits: {bites}")
                    print(
                        "          phases (wall s): "
                        + ", ".join(f"{k} {v:.2f}" for k, v in report.phases.items())
                    )
        finally:
            await http.aclose()
            await activity_db.dispose()
            await referral_db.dispose()
    finally:
        for name in names.values():
            await drop(pg_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--users", type=int, nargs="+", default=[100_000])
    parser.add_argument(
        "--kinds", nargs="+", choices=("basic", "referral"), default=["basic", "referral"]
    )
    args = parser.parse_args()
    if make_url(args.pg_url).host not in LOCAL_HOSTS:
        raise SystemExit("benchmarks only talk to 127.0.0.1")
    for users in args.users:
        asyncio.run(one(args.pg_url, args.redis_url, max(20, min(users, 100_000)), args.kinds))


if __name__ == "__main__":
    main()
