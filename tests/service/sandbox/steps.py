"""Steps of the sandbox clock tests: a sandbox tenant, its clock advanced while the
platform's workers run (burst workers driven by the test, in the background)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.service.flows import create_coupon_prize
from tests.service.harness import Platform

APP = "broker-app"


async def sandbox(platform: Platform, tenant: str, starts_at: str) -> dict[str, Any]:
    response = await platform.activity.post(
        "/v1/sandbox", json={"starts_at": starts_at}, headers=platform.operator(tenant)
    )
    assert response.status_code == 201, response.text
    return response.json()


async def advance(
    platform: Platform, tenant: str, to: str, wait_seconds: float = 60
) -> httpx.Response:
    """POST the advance and keep the platform's workers going until it answers: the
    advance waits for the grants it made to become records, as it would in production."""
    call = asyncio.create_task(
        platform.activity.post(
            "/v1/sandbox/clock",
            json={"to": to, "wait_seconds": wait_seconds},
            headers=platform.operator(tenant),
        )
    )
    while not call.done():
        await platform.relay()
        await platform.run_queued_jobs()
        await asyncio.sleep(0.05)
    return call.result()


async def advanced(platform: Platform, tenant: str, to: str) -> dict[str, Any]:
    response = await advance(platform, tenant, to)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "idle"
    return response.json()


async def prize(platform: Platform, tenant: str) -> str:
    return str((await create_coupon_prize(platform, tenant))["id"])


async def activity(platform: Platform, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
    full = {"name": {"en": f"Campaign {uuid.uuid4().hex[:6]}"}, **body}
    created = await platform.activity.post(
        "/v1/activities", json=full, headers=platform.operator(tenant)
    )
    assert created.status_code == 201, created.text
    published = await platform.activity.post(
        f"/v1/activities/{created.json()['id']}/publish", headers=platform.operator(tenant)
    )
    assert published.status_code == 200, published.text
    return published.json()


def tier(rule_id: str, threshold: str, prize_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "task": "deposit_reached",
        "threshold": threshold,
        "currency": "HKD",
        "prize_id": prize_id,
        **extra,
    }


async def post_event(
    platform: Platform, tenant: str, kind: str, user: str, when: str, **fields: Any
) -> None:
    body = {
        "event_id": f"{kind}-{user}-{uuid.uuid4().hex[:10]}",
        "type": kind,
        "user_id": user,
        "app_id": APP,
        "occurred_at": when,
        **fields,
    }
    response = await platform.activity.post(
        "/v1/events", json=body, headers=platform.service(tenant)
    )
    assert response.status_code == 202, response.text


async def deposit(platform: Platform, tenant: str, user: str, when: str, amount: str) -> None:
    await post_event(platform, tenant, "cash.deposited", user, when, amount=amount, currency="HKD")


async def records(platform: Platform, tenant: str, user: str) -> list[dict[str, Any]]:
    response = await platform.reward.get(
        "/v1/reward-records", params={"user_id": user}, headers=platform.operator(tenant)
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def rules_rewarded(platform: Platform, tenant: str, user: str) -> dict[str, str]:
    """{rule id: record status} of the user's records."""
    return {r["rule_id"]: r["status"] for r in await records(platform, tenant, user)}
