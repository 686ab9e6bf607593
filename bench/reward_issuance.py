"""Reward issuance throughput: how fast does one reward worker turn grants into issued
coupons, cash payments and shipments, end to end through real processes?

Creates scratch databases on the local PostgreSQL (reward + the reference cash system's),
starts ``activity-platform cash-endpoint`` and ``activity-platform worker reward`` as real
processes, enqueues N ``reward.create_from_grant`` jobs (a third each coupon, cash and
physical) on the local Redis, and times until every record is Issued. Prints throughput,
grant-to-issued latency percentiles per prize type and the exactly-once counts, then drops
the databases and the queue keys.

    .venv/bin/python -m bench.reward_issuance [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0] [--records 3000] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from activity_platform.embedded import database_url, free_port
from activity_platform.reference_cash import CashPayment
from contracts import jobs
from contracts.payloads import Grant, IssuanceForm
from reward_service.models import Prize, RewardRecord, Shipment, WalletCoupon
from service_kit.db import Database
from service_kit.migrations import ensure_database, upgrade
from service_kit.queue import create_arq_pool, enqueue

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TENANT = "bench"
TYPES = ("coupon", "cash", "physical")


def cli() -> list[str]:
    script = Path(sys.executable).parent / "activity-platform"
    return [str(script)] if script.exists() else [sys.executable, "-m", "activity_platform.cli"]


async def drop(pg_url: str, names: list[str]) -> None:
    engine = create_async_engine(
        make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with engine.connect() as conn:
        for name in names:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def seed(db: Database, records: int) -> dict[str, str]:
    ids = {t: uuid.uuid4() for t in TYPES}
    details = {
        "coupon": {
            "coupon_type": "market_data",
            "title": {"en": "Card"},
            "validity": {"days_from_issue": 30},
            "instructions": "",
            "rules": {},
        },
        "cash": {"amount": "88.00", "currency": "HKD"},
        "physical": {"description": "Umbrella"},
    }
    async with db.session() as session:
        for kind in TYPES:
            session.add(
                Prize(
                    id=ids[kind],
                    tenant_id=TENANT,
                    type=kind,
                    name=kind,
                    details=details[kind],
                    stock=records if kind == "physical" else None,
                    cost_amount=Decimal("88") if kind == "cash" else None,
                    cost_currency="HKD" if kind == "cash" else None,
                    created_by="bench",
                )
            )
    return {k: str(v) for k, v in ids.items()}


async def enqueue_grants(redis_url: str, prefix: str, prizes: dict[str, str], records: int) -> None:
    redis = await create_arq_pool(redis_url)
    try:
        for i in range(records):
            grant = Grant(
                tenant_id=TENANT,
                grant_key=f"bench-{i}",
                activity_code="ACT-BENCH001",
                rule_id="r1",
                user_id=f"u-{i}",
                task="register",
                achieved_at=datetime.now(UTC),
                prize_id=prizes[TYPES[i % 3]],
                issuance_form=IssuanceForm.automatic,
            )
            await enqueue(
                redis,
                prefix,
                "reward",
                jobs.REWARD_CREATE_FROM_GRANT,
                grant.model_dump(mode="json"),
                grant.grant_key,
            )
    finally:
        await redis.aclose()


async def issued(db: Database) -> int:
    async with db.session() as session:
        return int(
            await session.scalar(select(func.count()).where(RewardRecord.status == "issued")) or 0
        )


async def report(db: Database, cash_url: str, started_wall: datetime) -> None:
    async with db.session() as session:
        rows = (
            await session.execute(
                select(RewardRecord.prize_type, RewardRecord.created_at, RewardRecord.issued_at)
            )
        ).all()
        coupons = await session.scalar(select(func.count()).select_from(WalletCoupon))
        shipments = await session.scalar(select(func.count()).select_from(Shipment))
    cash_db = Database(cash_url, pool_size=1)
    async with cash_db.session() as session:
        payments = await session.scalar(select(func.count()).select_from(CashPayment))
    await cash_db.dispose()
    print(f"{'type':<10}{'records':>9}{'p50 s':>9}{'p95 s':>9}{'max s':>9}")
    for kind in TYPES:
        waits = sorted(
            (issued_at - created).total_seconds()
            for t, created, issued_at in rows
            if t == kind and issued_at is not None
        )
        p95 = waits[int(len(waits) * 0.95) - 1] if waits else 0.0
        print(
            f"{kind:<10}{len(waits):>9}{statistics.median(waits):>9.2f}{p95:>9.2f}{waits[-1]:>9.2f}"
        )
    print(f"wallet entries {coupons}, cash payments {payments}, shipments {shipments}")


def wait_up(url: str) -> None:
    for _ in range(150):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=1, help="reward worker processes")
    args = parser.parse_args()
    for url in (args.pg_url, args.redis_url):
        if make_url(url.replace("redis://", "postgresql://")).host not in LOCAL_HOSTS:
            raise SystemExit("benchmarks only talk to 127.0.0.1")
    tag = f"bench_reward_{int(time.time())}"
    reward_url = database_url(args.pg_url, f"{tag}_reward")
    cash_url = database_url(args.pg_url, f"{tag}_cash")
    port = free_port()
    env = {
        **os.environ,
        "REWARD_DATABASE_URL": reward_url,
        "REDIS_URL": args.redis_url,
        "QUEUE_PREFIX": tag,
        "ACTIVITY_PLATFORM_DEV": "1",
        "REWARD_DEFAULT_CASH_ENDPOINT_URL": f"http://127.0.0.1:{port}/v1/payments",
        "CASH_DATABASE_URL": cash_url,
        "LOG_LEVEL": "WARNING",
    }
    asyncio.run(ensure_database(reward_url))
    upgrade("reward", reward_url)
    loop = asyncio.new_event_loop()
    db = Database(reward_url, pool_size=2)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        prizes = loop.run_until_complete(seed(db, args.records))
        procs.append(subprocess.Popen([*cli(), "cash-endpoint", "--port", str(port)], env=env))
        wait_up(f"http://127.0.0.1:{port}/healthz")
        loop.run_until_complete(enqueue_grants(args.redis_url, tag, prizes, args.records))
        started_wall = datetime.now(UTC)
        started = time.perf_counter()
        for _ in range(args.workers):
            procs.append(subprocess.Popen([*cli(), "worker", "reward"], env=env))
        while loop.run_until_complete(issued(db)) < args.records:
            if time.perf_counter() - started > 600:
                raise SystemExit("not all records were issued within 10 minutes")
            time.sleep(0.25)
        elapsed = time.perf_counter() - started
        print(
            f"\n{args.records} grants → issued records in {elapsed:.1f} s "
            f"({args.records / elapsed:.0f} records/s, {args.workers} worker process(es), "
            "worker start included)"
        )
        loop.run_until_complete(report(db, cash_url, started_wall))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        loop.run_until_complete(db.dispose())

        async def cleanup() -> None:
            redis = await create_arq_pool(args.redis_url)
            keys = [k async for k in redis.scan_iter(f"{tag}:*")]
            keys += [k async for k in redis.scan_iter(f"arq:*:{tag}:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()
            await drop(args.pg_url, [f"{tag}_reward", f"{tag}_cash"])

        loop.run_until_complete(cleanup())
        loop.close()


if __name__ == "__main__":
    main()
