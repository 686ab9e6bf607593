"""An at-end campaign pays one tier per user, ever, end to end over real HTTP (SPEC §1.5):
settled at T+1 with the 10k tier, a deposit dated before the end but reported after the
settlement makes the window reach 50k; the catch-up run adds no second reward and explain
shows the operator the difference."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from service_kit.queue import create_arq_pool, enqueue
from tests.e2e.conftest import RunningPlatform

pytestmark = pytest.mark.e2e
TENANT = "tenant-settle"
PERMISSIONS = ("ActivityCenterFull", "RightsSystemFull")


def _poll(fetch: Any, done: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def _start_daily_run(p: RunningPlatform, day: str) -> None:
    """What the daily tick does after the tenant's cut-off: queue the run of a day."""

    async def go() -> None:
        redis = await create_arq_pool(p.redis_url)
        try:
            payload = {"tenant_id": TENANT, "day": day, "part": 0}
            await enqueue(
                redis, p.queue_prefix, "activity", "activity.daily_run", payload, f"t:{day}"
            )
        finally:
            await redis.aclose()

    asyncio.run(go())


def test_a_late_flow_after_the_settlement_pays_no_second_tier(
    running_platform: RunningPlatform,
) -> None:
    p = running_platform
    op = p.token("operator", tenant=TENANT, sub="ops-1", permissions=PERMISSIONS)
    backend = p.token("service", tenant=TENANT, sub="broker-backend")
    http = httpx.Client(timeout=15)
    settings = http.get(f"{p.urls['activity']}/v1/tenant-settings", headers=op)
    put = http.put(
        f"{p.urls['activity']}/v1/tenant-settings",
        headers={**op, "If-Match": settings.headers["ETag"]},
        json={"time_zone": "UTC", "base_currency": "HKD"},
    )
    assert put.status_code == 200, put.text
    # A window ending in a few seconds (an ended one cannot be published): its last day is
    # today in the tenant's zone (UTC), settled by the run of today, caught up by tomorrow's.
    now = datetime.now(UTC)
    ends_at = now + timedelta(seconds=15)
    last_day = ends_at.date()

    def deposit(event_id: str, at: datetime, amount: str) -> None:
        body = {
            "event_id": event_id,
            "type": "cash.deposited",
            "user_id": "saver",
            "app_id": "broker-app",
            "occurred_at": at.isoformat(),
            "amount": amount,
            "currency": "HKD",
        }
        response = http.post(f"{p.urls['activity']}/v1/events", headers=backend, json=body)
        assert response.status_code == 202, response.text

    deposit("dep-1", now - timedelta(hours=1), "45000")

    prizes = []
    for name in ("10k", "50k"):
        prize = http.post(
            f"{p.urls['reward']}/v1/prizes",
            headers=op,
            json={
                "type": "coupon",
                "name": f"Tier {name}",
                "coupon_type": "commission_free",
                "title": {"en": f"Tier {name}"},
                "validity": {"days_from_issue": 30},
            },
        )
        assert prize.status_code == 201, prize.text
        prizes.append(prize.json()["id"])
    created = http.post(
        f"{p.urls['activity']}/v1/activities",
        headers=op,
        json={
            "kind": "basic",
            "name": {"en": "Save more"},
            "timing": "at_end",
            "starts_at": (now - timedelta(days=2)).isoformat(),
            "ends_at": ends_at.isoformat(),
            "rules": [
                {
                    "id": tier,
                    "task": "net_deposit",
                    "threshold": threshold,
                    "currency": "HKD",
                    "prize_id": prize,
                }
                for (tier, threshold), prize in zip(
                    (("t10k", "10000"), ("t50k", "50000")), prizes, strict=True
                )
            ],
        },
    )
    assert created.status_code == 201, created.text
    act = created.json()
    published = http.post(f"{p.urls['activity']}/v1/activities/{act['id']}/publish", headers=op)
    assert published.status_code == 200, published.text

    def records() -> list[dict[str, Any]]:
        response = http.get(
            f"{p.urls['reward']}/v1/reward-records",
            headers=op,
            params={"activity_code": act["activity_code"]},
        )
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    def explain() -> dict[str, Any]:
        response = http.get(
            f"{p.urls['activity']}/v1/activities/{act['id']}/explain",
            headers=op,
            params={"user_id": "saver"},
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    # T+1: the run of the last day settles the 10k tier
    time.sleep(max(0.0, (ends_at - datetime.now(UTC)).total_seconds() + 0.5))
    _start_daily_run(p, last_day.isoformat())
    settled = _poll(records, lambda r: len(r) == 1)
    assert len(settled) == 1, p.log_tail()
    assert settled[0]["prize_id"] == prizes[0]

    # a deposit dated before the end, reported after the settlement: 55k reaches 50k
    deposit("dep-late", now - timedelta(minutes=30), "10000")
    _start_daily_run(p, (last_day + timedelta(days=1)).isoformat())  # the catch-up run
    why = _poll(
        explain,
        lambda e: any(o["outcome"] == "tier_changed_after_settlement" for o in e["outcomes"]),
    )
    outcomes = {o["rule_id"]: o for o in why["outcomes"]}
    assert outcomes["t50k"]["outcome"] == "tier_changed_after_settlement", why
    assert "settled with t10k" in outcomes["t50k"]["detail"]
    assert [g["rule_id"] for g in why["grants"]] == ["t10k"]
    time.sleep(1.0)
    assert len(records()) == 1  # still one reward
