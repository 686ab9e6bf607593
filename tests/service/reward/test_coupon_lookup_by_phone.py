"""Operators find a customer's coupons by phone (SPEC §3.5): the phone reaches the reward
service from the broker's business events, whenever it arrives."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from reward_service.profiles.models import UserProfile
from tests.service.harness import Platform
from tests.service.reward.helpers import coupon_prize, create_record, grant


def event(event_id: str, user: str, at: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "user.registered",
        "user_id": user,
        "app_id": "broker-app",
        "occurred_at": at,
        **fields,
    }


async def post(platform: Platform, body: dict[str, Any], tenant: str = "tenant-a") -> None:
    response = await platform.activity.post(
        "/v1/events", json=body, headers=platform.service(tenant)
    )
    assert response.status_code == 202, response.text


async def coupons_by_phone(
    platform: Platform, phone: str, tenant: str = "tenant-a"
) -> list[dict[str, Any]]:
    response = await platform.reward.get(
        "/v1/coupons", params={"phone": phone}, headers=platform.operator(tenant)
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_coupons_are_found_by_the_phone_of_the_registration(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    # The coupon is issued before the phone is known: the lookup still finds it later.
    created = await create_record(platform, grant(prize["id"], "u-ph"))
    assert created is not None
    await create_record(platform, grant(prize["id"], "u-other"))
    await post(
        platform,
        event("e-reg", "u-ph", "2026-11-23T01:00:00+00:00", phone="+852 9123 4567"),
    )
    await platform.drain()
    for typed in ("+852 9123 4567", "85291234567", "00852-9123-4567"):
        found = await coupons_by_phone(platform, typed)
        assert [c["user_id"] for c in found] == ["u-ph"], typed
    assert await coupons_by_phone(platform, "+852 9999 0000") == []
    # Another tenant's operator does not see this tenant's customer.
    assert await coupons_by_phone(platform, "+852 9123 4567", tenant="tenant-b") == []


async def test_the_newest_phone_wins_whatever_order_events_arrive_in(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    await create_record(platform, grant(prize["id"], "u-mv"))
    await post(platform, event("e-1", "u-mv", "2026-11-20T00:00:00+00:00", phone="+852 5000 0001"))
    login = {
        "event_id": "e-2",
        "type": "app.login",
        "user_id": "u-mv",
        "app_id": "broker-app",
        "occurred_at": "2026-11-22T00:00:00+00:00",
        "device_id": "d-1",
        "phone": "+852 5000 0002",
    }
    await post(platform, login)
    await platform.drain()
    assert await coupons_by_phone(platform, "85250000001") == []
    assert len(await coupons_by_phone(platform, "85250000002")) == 1
    # An older fact arriving late changes nothing; a replay changes nothing either.
    late = {**login, "event_id": "e-0", "occurred_at": "2026-11-19T00:00:00+00:00"}
    late["phone"] = "+852 5000 0000"
    await post(platform, late)
    await post(platform, login)
    await platform.drain()
    assert await coupons_by_phone(platform, "85250000000") == []
    assert len(await coupons_by_phone(platform, "85250000002")) == 1


async def test_certification_events_record_the_enterprise(platform: Platform) -> None:
    await post(
        platform,
        {
            "event_id": "e-cert",
            "type": "enterprise.certified",
            "user_id": "u-ent",
            "app_id": "broker-app",
            "occurred_at": "2026-11-22T00:00:00+00:00",
            "enterprise_id": "ent-9",
            "enterprise_name": "Acme Trading Ltd",
        },
    )
    await platform.drain()
    async with platform.db("reward").session() as session:
        profile = await session.scalar(select(UserProfile).where(UserProfile.user_id == "u-ent"))
    assert profile is not None and profile.enterprise_name == "Acme Trading Ltd"
    assert profile.phone is None


async def test_bad_lookups_are_explained(platform: Platform) -> None:
    for params, code in (
        ({}, "customer_required"),
        ({"phone": "12"}, "phone_invalid"),
    ):
        response = await platform.reward.get(
            "/v1/coupons", params=params, headers=platform.operator()
        )
        assert response.status_code == 422 and response.json()["code"] == code
    too_long = await platform.reward.get(
        "/v1/coupons", params={"phone": "1" * 40}, headers=platform.operator()
    )
    assert too_long.status_code == 422
    no_perm = await platform.reward.get(
        "/v1/coupons", params={"phone": "85291234567"}, headers=platform.operator(permissions=[])
    )
    assert no_perm.status_code == 403
