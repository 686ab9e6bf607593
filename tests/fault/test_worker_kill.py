"""Fault test: issue 2,000 reward records (coupons and cash) while the reward worker is
SIGKILLed at random moments and restarted. Afterwards every record is Issued exactly once:
one wallet entry per coupon record, one payment per cash record in the cash system, no
duplicates — whatever arq re-ran and whatever the reconciler re-drove.

Real processes: ``activity-platform worker reward`` and ``activity-platform cash-endpoint``
(which also loses some answers and is sometimes unavailable), real PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from activity_platform.embedded import free_port
from activity_platform.reference_cash import CashPayment
from contracts import jobs
from contracts.payloads import Grant, IssuanceForm
from reward_service.models import (
    CashPayout,
    OutboxMessage,
    Prize,
    RecordTransition,
    RewardRecord,
    WalletCoupon,
)
from service_kit.db import Database
from service_kit.migrations import ensure_database, upgrade
from service_kit.queue import create_arq_pool, enqueue
from tests.infra import Infra, drop_databases

pytestmark = pytest.mark.fault

RECORDS = 2_000
KILLS = 4
TENANT = "tenant-fault"
DEADLINE_SECONDS = 300
ROOT = Path(__file__).resolve().parents[2]


def cli() -> list[str]:
    script = Path(sys.executable).parent / "activity-platform"
    return [str(script)] if script.exists() else [sys.executable, "-m", "activity_platform.cli"]


def log_file(name: str) -> Path:
    path = ROOT / ".data" / "fault-logs"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{name}.log"


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.process: subprocess.Popen[bytes] | None = None
        self.log = open(log_file(name), "wb")  # noqa: SIM115 - closed in stop()

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


@pytest.fixture
def fault_env(infra: Infra) -> Iterator[dict[str, str]]:
    reward_url = infra.db_url("reward", "_fault")
    cash_url = infra.db_url("cash", "_fault")
    asyncio.run(ensure_database(reward_url))
    upgrade("reward", reward_url)
    cash_port = free_port()
    env = {
        **os.environ,
        "REWARD_DATABASE_URL": reward_url,
        "REWARD_DB_POOL_SIZE": "10",
        "REDIS_URL": infra.redis_url,
        "QUEUE_PREFIX": f"{infra.queue_prefix}-fault",
        "ACTIVITY_PLATFORM_DEV": "1",  # tokens signed with the development secret
        "REWARD_DEFAULT_CASH_ENDPOINT_URL": f"http://127.0.0.1:{cash_port}/v1/payments",
        # Short timeouts: a killed job is re-run by arq after 3 + 10 s, and the reconciler
        # re-drives a record left in Issuing after 4 s.
        "REWARD_JOB_TIMEOUT_SECONDS": "3",
        "REWARD_ISSUING_DEADLINE_SECONDS": "4",
        "REWARD_RECONCILE_INTERVAL_SECONDS": "2",
        "REWARD_CASH_RETRY_BASE_SECONDS": "0.2",
        "CASH_DATABASE_URL": cash_url,
        "CASH_PORT": str(cash_port),
        # The cash system misbehaves too: unavailable, or paying and losing the answer.
        "CASH_UNAVAILABLE_RATE": "0.03",
        "CASH_LOST_RESPONSE_RATE": "0.03",
        "LOG_LEVEL": "WARNING",
    }
    yield env
    asyncio.run(drop_databases(infra, {"reward": reward_url, "cash": cash_url}))


async def seed_prizes(db: Database) -> tuple[str, str]:
    coupon, cash = uuid.uuid4(), uuid.uuid4()
    async with db.session() as session:
        session.add(
            Prize(
                id=coupon,
                tenant_id=TENANT,
                type="coupon",
                name="Market data card",
                details={
                    "coupon_type": "market_data",
                    "title": {"en": "Market data card"},
                    "validity": {"days_from_issue": 30},
                    "instructions": "",
                    "rules": {},
                },
                created_by="fault-test",
            )
        )
        session.add(
            Prize(
                id=cash,
                tenant_id=TENANT,
                type="cash",
                name="HKD 88",
                details={"amount": "88.00", "currency": "HKD"},
                cost_amount=Decimal("88"),
                cost_currency="HKD",
                created_by="fault-test",
            )
        )
    return str(coupon), str(cash)


async def enqueue_grants(env: dict[str, str], coupon: str, cash: str) -> None:
    prefix = env["QUEUE_PREFIX"]
    redis = await create_arq_pool(env["REDIS_URL"])
    try:
        for i in range(RECORDS):
            grant = Grant(
                tenant_id=TENANT,
                grant_key=f"fault-{i}",
                activity_code="ACT-FAULT001",
                rule_id="r1",
                user_id=f"u-{i}",
                task="register",
                achieved_at=datetime.now(UTC),
                prize_id=coupon if i % 2 == 0 else cash,
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


async def issued_count(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        total = await session.scalar(select(func.count()).select_from(RewardRecord))
        issued = await session.scalar(select(func.count()).where(RewardRecord.status == "issued"))
    return int(total or 0), int(issued or 0)


def wait_healthy(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


async def queue_cleanup(env: dict[str, str]) -> None:
    redis = await create_arq_pool(env["REDIS_URL"])
    try:
        prefix = env["QUEUE_PREFIX"]
        keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
        keys += [k async for k in redis.scan_iter(f"arq:*:{prefix}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def test_worker_killed_at_random_issues_every_record_exactly_once(
    fault_env: dict[str, str],
) -> None:
    rng = random.Random(int(os.environ.get("FAULT_SEED", "0")) or None)
    env = fault_env
    reward_db = Database(env["REWARD_DATABASE_URL"], pool_size=2)
    cash = Proc("cash-endpoint", [*cli(), "cash-endpoint", "--port", env["CASH_PORT"]], env)
    worker = Proc("reward-worker", [*cli(), "worker", "reward"], env)
    loop = asyncio.new_event_loop()
    kills: list[float] = []
    started = time.monotonic()
    try:
        coupon, cash_prize = loop.run_until_complete(seed_prizes(reward_db))
        cash.start()
        wait_healthy(f"http://127.0.0.1:{env['CASH_PORT']}/healthz")
        loop.run_until_complete(enqueue_grants(env, coupon, cash_prize))
        worker.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(2.0, 7.0))
            worker.kill()
            kills.append(round(time.monotonic() - started, 1))
            time.sleep(rng.uniform(0.0, 1.0))
            worker.start()
        while time.monotonic() - started < DEADLINE_SECONDS:
            total, issued = loop.run_until_complete(issued_count(reward_db))
            if total == RECORDS and issued == RECORDS:
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
        worker.stop()
        numbers = loop.run_until_complete(collect(reward_db, env["CASH_DATABASE_URL"]))
    finally:
        worker.stop()
        cash.stop()
        loop.run_until_complete(queue_cleanup(env))
        loop.run_until_complete(reward_db.dispose())
        loop.close()

    print(
        f"\nfault test: {RECORDS} records, worker SIGKILLed at {kills} s, "
        f"all issued after {elapsed:.1f} s\n" + "\n".join(f"  {k}: {v}" for k, v in numbers.items())
    )
    assert numbers["records"] == RECORDS
    assert numbers["issued"] == RECORDS, numbers
    assert numbers["coupon_records"] + numbers["cash_records"] == RECORDS
    assert numbers["wallet_entries"] == numbers["coupon_records"]
    assert numbers["wallet_entries_distinct_records"] == numbers["wallet_entries"]
    assert numbers["cash_payments"] == numbers["cash_records"]
    assert numbers["cash_payments_matching_records"] == numbers["cash_records"]
    assert numbers["fulfil_transitions"] == RECORDS
    assert numbers["records_with_one_fulfil"] == RECORDS


async def collect(reward_db: Database, cash_url: str) -> dict[str, int]:
    async with reward_db.session() as session:

        async def scalar(stmt: object) -> int:
            return int(await session.scalar(stmt) or 0)  # type: ignore[call-overload]

        numbers = {
            "records": await scalar(select(func.count()).select_from(RewardRecord)),
            "issued": await scalar(select(func.count()).where(RewardRecord.status == "issued")),
            "coupon_records": await scalar(
                select(func.count()).where(RewardRecord.prize_type == "coupon")
            ),
            "cash_records": await scalar(
                select(func.count()).where(RewardRecord.prize_type == "cash")
            ),
            "wallet_entries": await scalar(select(func.count()).select_from(WalletCoupon)),
            "wallet_entries_distinct_records": await scalar(
                select(func.count(func.distinct(WalletCoupon.record_id)))
            ),
            "fulfil_transitions": await scalar(
                select(func.count()).where(RecordTransition.action == "fulfil")
            ),
            "records_with_one_fulfil": await scalar(
                select(func.count()).select_from(
                    select(RecordTransition.record_id)
                    .where(RecordTransition.action == "fulfil")
                    .group_by(RecordTransition.record_id)
                    .having(func.count() == 1)
                    .subquery()
                )
            ),
            "cash_payout_attempts": await scalar(select(func.sum(CashPayout.attempts))),
            "issue_jobs_written": await scalar(
                select(func.count()).where(OutboxMessage.job_name == "reward.issue")
            ),
            "reconciler_redrives": await scalar(
                select(func.count()).where(
                    OutboxMessage.job_name == "reward.issue",
                    OutboxMessage.job_id.like("%:redrive:%"),
                )
            ),
        }
        numbers_by_number = set(
            (
                await session.scalars(
                    select(RewardRecord.number).where(RewardRecord.prize_type == "cash")
                )
            ).all()
        )
    cash_db = Database(cash_url, pool_size=2)
    try:
        async with cash_db.session() as session:
            keys = list((await session.scalars(select(CashPayment.idempotency_key))).all())
    finally:
        await cash_db.dispose()
    numbers["cash_payments"] = len(keys)
    numbers["cash_payments_matching_records"] = len(set(keys) & numbers_by_number)
    return numbers
