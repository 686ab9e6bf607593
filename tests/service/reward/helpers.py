"""Steps shared by the reward service tests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from contracts import jobs
from contracts.payloads import Grant, IssuanceForm, LockUp
from reward_service.config import RewardSettings
from reward_service.db import OutboxMessage
from reward_service.records import service as records
from reward_service.records.models import RecordTransition, RewardRecord
from reward_service.records.reconciler import ReconcileReport, reconcile_once
from reward_service.records.state import Action
from reward_service.worker import create_worker
from service_kit.http import ServiceClient
from service_kit.outbox import relay_once
from service_kit.outbox.bundles import items_of
from service_kit.queue import enqueue, queue_name
from tests.service.harness import Platform, worker_run_relay_off

COUPON = {
    "type": "coupon",
    "name": "30-day market data",
    "coupon_type": "market_data",
    "title": {"en": "Market data card", "zh-Hans": "行情卡", "zh-Hant": "行情卡"},
    "validity": {"days_from_issue": 30},
    "instructions": "Activate in Me › Cards",
    "rules": {"market": "HK"},
}


async def create_prize(
    platform: Platform, body: dict[str, Any], tenant: str = "tenant-a"
) -> dict[str, Any]:
    response = await platform.reward.post(
        "/v1/prizes", json=body, headers=platform.operator(tenant)
    )
    assert response.status_code == 201, response.text
    return response.json()


async def coupon_prize(platform: Platform, **overrides: Any) -> dict[str, Any]:
    return await create_prize(platform, {**COUPON, **overrides})


async def physical_prize(platform: Platform, stock: int, name: str = "Umbrella") -> dict[str, Any]:
    return await create_prize(
        platform,
        {
            "type": "physical",
            "name": name,
            "description": "Branded umbrella",
            "image_url": "https://cdn.example.com/umbrella.png",
            "stock": stock,
        },
    )


async def cash_prize(platform: Platform, amount: str = "100.00") -> dict[str, Any]:
    return await create_prize(
        platform, {"type": "cash", "name": f"HKD {amount}", "amount": amount, "currency": "HKD"}
    )


async def use_cash_endpoint(platform: Platform, url: str, tenant: str = "tenant-a") -> None:
    response = await platform.reward.put(
        "/v1/payout-endpoint", json={"url": url}, headers=platform.operator(tenant)
    )
    assert response.status_code == 200, response.text


def grant(
    prize_id: str,
    user_id: str = "u-1",
    *,
    key: str | None = None,
    form: str = "automatic",
    lock: LockUp | None = None,
    tenant: str = "tenant-a",
    activity_code: str = "ACT-TEST0001",
    task: str = "register",
    achieved_at: datetime | None = None,
) -> Grant:
    return Grant(
        tenant_id=tenant,
        grant_key=key or f"g-{uuid.uuid4().hex}",
        activity_code=activity_code,
        activity_name="Sign-up gift",
        rule_id="r1",
        user_id=user_id,
        app_id="broker-app",
        counterpart_id="u-inviter",
        task=task,
        achieved_at=achieved_at or datetime.fromisoformat("2026-11-23T01:30:00+00:00"),
        prize_id=prize_id,
        issuance_form=IssuanceForm(form),
        lock_up=lock,
        enterprise_name=None,
    )


async def create_record(platform: Platform, g: Grant) -> RewardRecord | None:
    """The reward side of a grant, through the same service call the job makes."""
    async with platform.db("reward").session() as session:
        return await records.create_from_grant(session, g, platform.clock.now())


async def issuing_record(platform: Platform, g: Grant) -> RewardRecord:
    """A record left in Issuing with its ``reward.issue`` job queued, as after an operator's
    submit (automatic coupons are issued in the transaction that creates them)."""
    now = platform.clock.now()
    async with platform.db("reward").session() as session:
        created = await records.create_from_grant(
            session, g.model_copy(update={"issuance_form": IssuanceForm.manual}), now
        )
        assert created is not None
        return await records.move(session, created, Action.submit, actor="system:reward", at=now)


async def enqueue_grant(platform: Platform, g: Grant) -> None:
    """As activity_service's outbox relay does: the job id is the grant key."""
    await enqueue(
        platform.apps["reward"].state.arq,
        platform.settings["reward"].queue_prefix,
        "reward",
        jobs.REWARD_CREATE_FROM_GRANT,
        g.model_dump(mode="json"),
        g.grant_key,
    )


async def record(platform: Platform, record_id: Any) -> RewardRecord:
    async with platform.db("reward").session() as session:
        row = await session.get(RewardRecord, uuid.UUID(str(record_id)))
        assert row is not None
        return row


async def transitions(platform: Platform, record_id: Any) -> list[tuple[str | None, str, str]]:
    async with platform.db("reward").session() as session:
        rows = await session.scalars(
            select(RecordTransition)
            .where(RecordTransition.record_id == uuid.UUID(str(record_id)))
            .order_by(RecordTransition.id)
        )
        return [(t.from_status, t.to_status, t.action) for t in rows]


async def status_messages(platform: Platform, record_number: str) -> list[str]:
    """The status-back messages written for activity_service, in order."""
    async with platform.db("reward").session() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.job_name == jobs.ACTIVITY_RECORD_STATUS_CHANGED)
            .order_by(OutboxMessage.created_at)
        )
        changes = [item for m in rows for item in items_of(m.payload)]
        return [c["to_status"] for c in changes if c["record_number"] == record_number]


async def count(platform: Platform, model: Any) -> int:
    async with platform.db("reward").session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def reconcile(platform: Platform, settings: RewardSettings | None = None) -> ReconcileReport:
    settings = settings or platform.settings["reward"]  # type: ignore[assignment]
    http = ServiceClient(settings, mounts=platform.mounts)
    try:
        return await reconcile_once(platform.db("reward"), http, settings, platform.clock.now())
    finally:
        await http.aclose()


def client(app: Any, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def drain(platform: Platform, max_rounds: int = 50) -> None:
    """Relay the reward outbox and run the reward worker (burst) until quiet. Only the reward
    service runs: these tests are about it, and status messages for activity_service stay
    visible in the outbox."""
    settings = platform.settings["reward"]
    redis = platform.apps["reward"].state.arq
    queue = queue_name(settings.queue_prefix, "reward")
    for _ in range(max_rounds):
        sent = 0
        while n := await relay_once(
            platform.db("reward"), OutboxMessage, redis, settings.queue_prefix
        ):
            sent += n
        ran = 0
        if await redis.zcard(queue):
            worker = create_worker(
                settings,  # type: ignore[arg-type]
                clock=platform.clock,
                burst=True,
                http_mounts=platform.mounts,
            )
            worker_run_relay_off(worker)
            try:
                await worker.async_run()
                ran = worker.jobs_complete + worker.jobs_failed + worker.jobs_retried
            finally:
                await worker.close()
        if sent == 0 and ran == 0:
            return
    raise AssertionError("the reward service did not go quiet")
