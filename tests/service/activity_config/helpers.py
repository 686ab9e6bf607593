"""Bodies and steps shared by the activity configuration tests."""

from __future__ import annotations

import copy
from typing import Any

from tests.service.flows import create_coupon_prize
from tests.service.harness import Platform

WINDOW = {"starts_at": "2026-11-01T00:00:00+00:00", "ends_at": "2027-01-01T00:00:00+00:00"}


async def prizes(platform: Platform, n: int, tenant: str = "tenant-a") -> list[str]:
    return [(await create_coupon_prize(platform, tenant))["id"] for _ in range(n)]


def basic_body(p: list[str], **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "basic",
        "name": {"zh-Hans": "入金有礼", "zh-Hant": "入金有禮", "en": "Deposit bonus"},
        **WINDOW,
        "attribute": "new_user",
        "timing": "real_time",
        "issuance_form": "automatic",
        "rules": [
            {"task": "open_account", "prize_id": p[0]},
            {
                "task": "net_deposit",
                "threshold": "10000",
                "currency": "HKD",
                "prize_id": p[1],
                "lock_up": {"amount": "10000", "currency": "HKD", "days": 30},
            },
        ],
    }
    body.update(over)
    return body


def referral_body(p: list[str], reward_type: str = "tiered", **over: Any) -> dict[str, Any]:
    rule: dict[str, Any]
    if reward_type == "tiered":
        rule = {
            "task": "open_account",
            "invitee_prize_id": p[2],
            "tiers": [
                {"min_invites": 1, "max_invites": 5, "prize_id": p[0]},
                {"min_invites": 6, "max_invites": None, "prize_id": p[1], "bonus_prize_id": p[3]},
            ],
        }
    else:
        rule = {"task": "register", "prize_id": p[0], "invitee_prize_id": p[2]}
    body: dict[str, Any] = {
        "kind": "referral",
        "name": {"en": "Invite friends"},
        **WINDOW,
        "attribute": "regular",
        "reward_type": reward_type,
        "rules": [rule],
        "prize_limits": [{"prize_id": p[0], "max_per_user": 5}],
    }
    body.update(over)
    return body


def team_body(p: list[str], **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "team",
        "name": {"zh-Hans": "助力得奖"},
        **WINDOW,
        "form": "assist",
        "helpers_needed": 3,
        "initiation_limit": 2,
        "assist_limit": None,
        "helper_rewards": [{"segment_id": None, "prize_id": p[0]}],
        "initiator_prize_id": p[1],
        "issuance_form": "manual",
    }
    body.update(over)
    return body


def non_standard_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "non_standard",
        "name": {"zh-Hant": "大客戶回饋"},
        "cost_type": "daily_operations",
        "review_required": True,
        "remarks": "offline",
    }
    body.update(over)
    return body


def deep(body: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(body)


async def create(
    platform: Platform, body: dict[str, Any], tenant: str = "tenant-a", expect: int = 201
) -> dict[str, Any]:
    response = await platform.activity.post(
        "/v1/activities", json=body, headers=platform.operator(tenant)
    )
    assert response.status_code == expect, response.text
    return response.json()


async def patch(
    platform: Platform,
    activity: dict[str, Any],
    changes: dict[str, Any],
    version: int | None = None,
    tenant: str = "tenant-a",
) -> Any:
    headers = platform.operator(tenant)
    if version is not None:
        headers["If-Match"] = f'"{version}"'
    return await platform.activity.patch(
        f"/v1/activities/{activity['id']}", json=changes, headers=headers
    )


async def act(platform: Platform, activity: dict[str, Any], op: str, tenant: str = "tenant-a"):
    return await platform.activity.post(
        f"/v1/activities/{activity['id']}/{op}", headers=platform.operator(tenant)
    )


async def segment(
    platform: Platform, name: str = "VIP", tenant: str = "tenant-a"
) -> dict[str, Any]:
    response = await platform.activity.post(
        "/v1/segments", json={"name": name}, headers=platform.operator(tenant)
    )
    assert response.status_code == 201, response.text
    return response.json()
