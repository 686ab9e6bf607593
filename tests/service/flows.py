"""Reusable steps of the business path, shared by service tests."""

from __future__ import annotations

from typing import Any

from tests.service.harness import Platform

WINDOW = {"starts_at": "2026-11-01T00:00:00+00:00", "ends_at": "2027-01-01T00:00:00+00:00"}


async def create_coupon_prize(platform: Platform, tenant: str = "tenant-a") -> dict[str, Any]:
    response = await platform.reward.post(
        "/v1/prizes",
        json={
            "type": "coupon",
            "name": "30-day market data",
            "coupon_type": "market_data",
            "title": {"en": "Market data card", "zh-Hans": "行情卡"},
            "validity": {"days_from_issue": 30},
            "instructions": "Activate in Me › Cards",
        },
        headers=platform.operator(tenant),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def create_register_activity(
    platform: Platform, prize_id: str, tenant: str = "tenant-a", publish: bool = True
) -> dict[str, Any]:
    response = await platform.activity.post(
        "/v1/activities",
        json={
            "kind": "basic",
            "name": {"en": "Sign-up gift", "zh-Hans": "注册礼"},
            **WINDOW,
            "attribute": "unlimited",
            "timing": "real_time",
            "issuance_form": "automatic",
            "rules": [{"task": "register", "prize_id": prize_id}],
        },
        headers=platform.operator(tenant),
    )
    assert response.status_code == 201, response.text
    activity = response.json()
    if publish:
        published = await platform.activity.post(
            f"/v1/activities/{activity['id']}/publish", headers=platform.operator(tenant)
        )
        assert published.status_code == 200, published.text
        activity = published.json()
    return activity


def registered_event(user_id: str, event_id: str, invite_code: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": event_id,
        "type": "user.registered",
        "user_id": user_id,
        "app_id": "broker-app",
        "occurred_at": "2026-11-23T01:30:00+00:00",
    }
    if invite_code:
        body["invite_code"] = invite_code
    return body
