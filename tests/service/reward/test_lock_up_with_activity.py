"""SPEC §3.3 end to end inside the platform: the lock-up is settled by asking the real
activity service (its position endpoint, over HTTP) about the user's money flows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from contracts.payloads import LockUp
from tests.service.harness import Platform
from tests.service.reward.helpers import (
    coupon_prize,
    create_record,
    drain,
    grant,
    reconcile,
    record,
)

LOCK = LockUp(amount=Decimal("10000"), currency="HKD", days=30)


async def money_event(
    platform: Platform, user: str, n: int, kind: str, amount: str, at: str
) -> None:
    body: dict[str, Any] = {
        "event_id": f"evt-{user}-{n}",
        "type": kind,
        "user_id": user,
        "app_id": "broker-app",
        "occurred_at": at,
        "amount": amount,
        "currency": "HKD",
    }
    response = await platform.activity.post("/v1/events", json=body, headers=platform.service())
    assert response.status_code == 202, response.text


async def test_lock_kept_is_released_and_lock_broken_is_cancelled(platform: Platform) -> None:
    await money_event(platform, "u-keeps", 1, "cash.deposited", "20000", "2026-11-20T01:00:00Z")
    await money_event(platform, "u-spends", 1, "cash.deposited", "20000", "2026-11-20T01:00:00Z")
    await money_event(platform, "u-spends", 2, "cash.withdrawn", "15000", "2026-12-01T01:00:00Z")
    prize = await coupon_prize(platform)
    keeps = await create_record(platform, grant(prize["id"], "u-keeps", lock=LOCK))
    spends = await create_record(platform, grant(prize["id"], "u-spends", lock=LOCK))
    assert keeps and spends

    platform.clock.advance(timedelta(days=30, seconds=1))
    report = await reconcile(platform)
    assert (report.released, report.broken, report.lock_checks_deferred) == (1, 1, 0)
    await drain(platform)
    assert (await record(platform, keeps.id)).status == "issued"
    cancelled = await record(platform, spends.id)
    assert cancelled.status == "cancelled"
    assert cancelled.failure_reason and cancelled.failure_reason.startswith("lock_broken")
