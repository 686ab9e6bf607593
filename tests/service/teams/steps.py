"""Steps shared by the team activity tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tests.service.flows import WINDOW, create_coupon_prize
from tests.service.harness import Platform


async def prizes(platform: Platform, n: int, tenant: str = "tenant-a") -> list[str]:
    return [(await create_coupon_prize(platform, tenant))["id"] for _ in range(n)]


async def team_activity(
    platform: Platform,
    initiator_prize: str,
    helper_rewards: list[dict[str, Any]] | None = None,
    *,
    tenant: str = "tenant-a",
    publish: bool = True,
    **over: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "team",
        "name": {"en": "Help me win", "zh-Hans": "助力得奖"},
        **WINDOW,
        "form": "assist",
        "helpers_needed": 2,
        "initiation_limit": None,
        "assist_limit": None,
        "helper_rewards": helper_rewards or [],
        "initiator_prize_id": initiator_prize,
        "issuance_form": "automatic",
        **over,
    }
    created = await platform.activity.post(
        "/v1/activities", json=body, headers=platform.operator(tenant)
    )
    assert created.status_code == 201, created.text
    if not publish:
        return created.json()
    published = await platform.activity.post(
        f"/v1/activities/{created.json()['id']}/publish", headers=platform.operator(tenant)
    )
    assert published.status_code == 200, published.text
    return published.json()


async def members(platform: Platform, segment_name: str, users: list[str]) -> str:
    """A segment with ``users``, visible to 5-minute eligibility (the clock moves on)."""
    created = await platform.activity.post(
        "/v1/segments", json={"name": segment_name}, headers=platform.operator()
    )
    assert created.status_code == 201, created.text
    uploaded = await platform.activity.put(
        f"/v1/segments/{created.json()['id']}/members", json=users, headers=platform.operator()
    )
    assert uploaded.status_code == 200, uploaded.text
    return str(created.json()["id"])


def next_snapshot(platform: Platform) -> None:
    platform.clock.advance(timedelta(minutes=5))


async def start(
    platform: Platform,
    activity_id: str,
    user: str,
    tenant: str = "tenant-a",
    **headers: str,
) -> httpx.Response:
    return await platform.activity.post(
        f"/v1/activities/{activity_id}/teams",
        json={"nickname": user.upper()},
        headers={**platform.user(user, tenant), **headers},
    )


async def started(platform: Platform, activity_id: str, user: str) -> dict[str, Any]:
    response = await start(platform, activity_id, user)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def assist(
    platform: Platform, team_id: str, user: str, tenant: str = "tenant-a", **headers: str
) -> httpx.Response:
    return await platform.activity.post(
        f"/v1/teams/{team_id}/assists", headers={**platform.user(user, tenant), **headers}
    )


async def records(platform: Platform, activity_code: str) -> list[tuple[str, str, str]]:
    """(user, prize id, status) of the activity's reward records, sorted."""
    response = await platform.reward.get(
        "/v1/reward-records",
        params={"activity_code": activity_code, "limit": 200},
        headers=platform.operator(),
    )
    assert response.status_code == 200, response.text
    return sorted((r["user_id"], r["prize_id"], r["status"]) for r in response.json()["items"])
