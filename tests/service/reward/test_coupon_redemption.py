"""Broker systems mark coupons used by id or code with a service token (SPEC §3.5)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from tests.service.harness import Platform
from tests.service.reward.helpers import coupon_prize, create_record, grant


async def issued_coupon(platform: Platform, user: str = "u-c", **prize: Any) -> dict[str, Any]:
    prize_id = (await coupon_prize(platform, **prize))["id"]
    created = await create_record(platform, grant(prize_id, user))
    assert created is not None and created.status == "issued"
    mine = await platform.reward.get("/v1/me/coupons", headers=platform.user(user))
    (coupon,) = mine.json()["items"]
    return coupon


async def test_a_broker_system_uses_a_coupon_by_code_and_a_repeat_answers_the_same(
    platform: Platform,
) -> None:
    coupon = await issued_coupon(platform)
    assert len(coupon["code"]) == 12
    pos = platform.service(sub="broker-pos")
    status = await platform.reward.get(f"/v1/coupons/by-code/{coupon['code']}", headers=pos)
    assert status.status_code == 200 and status.json()["status"] == "unused"

    # Lower case with a dash, as typed at a counter.
    typed = coupon["code"][:6].lower() + "-" + coupon["code"][6:]
    first = await platform.reward.post(
        f"/v1/coupons/by-code/{typed}/use", json={"reference": "ORDER-1"}, headers=pos
    )
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "used" and first.json()["used_by"] == "service:broker-pos"
    platform.clock.advance(timedelta(minutes=5))
    again = await platform.reward.post(
        f"/v1/coupons/by-code/{coupon['code']}/use", json={"reference": "ORDER-1"}, headers=pos
    )
    assert again.status_code == 200 and again.json() == first.json()
    by_id = await platform.reward.post(
        f"/v1/coupons/{coupon['id']}/use", json={"reference": "ORDER-1"}, headers=pos
    )
    assert by_id.json() == first.json()

    other_order = await platform.reward.post(
        f"/v1/coupons/{coupon['id']}/use", json={"reference": "ORDER-2"}, headers=pos
    )
    assert other_order.status_code == 409 and other_order.json()["code"] == "coupon_used"
    other_system = await platform.reward.post(
        f"/v1/coupons/{coupon['id']}/use",
        json={"reference": "ORDER-1"},
        headers=platform.service(sub="other-system"),
    )
    assert other_system.status_code == 409 and other_system.json()["code"] == "coupon_used"
    app = await platform.reward.post(
        f"/v1/me/coupons/{coupon['id']}/use", headers=platform.user("u-c")
    )
    assert app.status_code == 409 and app.json()["code"] == "coupon_used"
    read = await platform.reward.get(f"/v1/coupons/{coupon['id']}", headers=pos)
    assert read.json()["status"] == "used" and read.json()["used_reference"] == "ORDER-1"


async def test_coupons_past_validity_read_as_expired_and_cannot_be_used(
    platform: Platform,
) -> None:
    coupon = await issued_coupon(platform)
    platform.clock.advance(timedelta(days=30, seconds=1))
    pos = platform.service(sub="broker-pos")
    read = await platform.reward.get(f"/v1/coupons/{coupon['id']}", headers=pos)
    assert read.json()["status"] == "expired"
    refused = await platform.reward.post(f"/v1/coupons/{coupon['id']}/use", headers=pos)
    assert refused.status_code == 409 and refused.json()["code"] == "coupon_expired"
    still = await platform.reward.get(f"/v1/coupons/by-code/{coupon['code']}", headers=pos)
    assert still.json()["status"] == "expired" and still.json()["used_at"] is None


async def test_a_coupon_with_a_later_start_is_not_valid_yet(platform: Platform) -> None:
    coupon = await issued_coupon(
        platform,
        validity={"valid_from": "2026-12-01T00:00:00+00:00", "valid_until": "2027-01-01T00:00:00Z"},
    )
    refused = await platform.reward.post(
        f"/v1/coupons/{coupon['id']}/use", headers=platform.service()
    )
    assert refused.status_code == 409 and refused.json()["code"] == "coupon_not_yet_valid"


async def test_the_app_user_may_repeat_their_own_use(platform: Platform) -> None:
    coupon = await issued_coupon(platform)
    first = await platform.reward.post(
        f"/v1/me/coupons/{coupon['id']}/use", headers=platform.user("u-c")
    )
    again = await platform.reward.post(
        f"/v1/me/coupons/{coupon['id']}/use", headers=platform.user("u-c")
    )
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    assert first.json()["used_by"] == "user:u-c"
    stranger = await platform.reward.post(
        f"/v1/me/coupons/{coupon['id']}/use", headers=platform.user("u-other")
    )
    assert stranger.status_code == 404 and stranger.json()["code"] == "coupon_not_found"


async def test_concurrent_uses_one_wins_and_identical_requests_agree(platform: Platform) -> None:
    coupon = await issued_coupon(platform)
    url = f"/v1/coupons/{coupon['id']}/use"
    same = await asyncio.gather(
        *(
            platform.reward.post(url, json={"reference": "R"}, headers=platform.service(sub="pos"))
            for _ in range(4)
        )
    )
    assert [r.status_code for r in same] == [200] * 4
    assert len({r.json()["used_at"] for r in same}) == 1
    coupon2 = await issued_coupon(platform, user="u-d")
    url2 = f"/v1/coupons/{coupon2['id']}/use"
    rivals = await asyncio.gather(
        *(
            platform.reward.post(url2, json={"reference": f"R{i}"}, headers=platform.service())
            for i in range(4)
        )
    )
    assert sorted(r.status_code for r in rivals) == [200, 409, 409, 409]


async def test_bad_paths_wrong_tenant_caller_and_code(platform: Platform) -> None:
    coupon = await issued_coupon(platform)
    other_tenant = platform.service(tenant="tenant-b")
    for path in (f"/v1/coupons/{coupon['id']}", f"/v1/coupons/by-code/{coupon['code']}"):
        missing = await platform.reward.get(path, headers=other_tenant)
        assert missing.status_code == 404 and missing.json()["code"] == "coupon_not_found"
        used = await platform.reward.post(path + "/use", headers=other_tenant)
        assert used.status_code == 404
    # Marking used is for broker systems: an operator or an app user on this route is refused.
    as_operator = await platform.reward.post(
        f"/v1/coupons/{coupon['id']}/use", headers=platform.operator()
    )
    assert as_operator.status_code == 403
    as_user = await platform.reward.post(
        f"/v1/coupons/{coupon['id']}/use", headers=platform.user("u-c")
    )
    assert as_user.status_code == 403
    no_perm = await platform.reward.get(
        f"/v1/coupons/{coupon['id']}", headers=platform.operator(permissions=[])
    )
    assert no_perm.status_code == 403
    bad_ref = await platform.reward.post(
        f"/v1/coupons/{coupon['id']}/use", json={"reference": "x" * 129}, headers=platform.service()
    )
    assert bad_ref.status_code == 422
    unknown = await platform.reward.get("/v1/coupons/by-code/NOPE", headers=platform.service())
    assert unknown.status_code == 404
    still = await platform.reward.get(f"/v1/coupons/{coupon['id']}", headers=platform.service())
    assert still.json()["status"] == "unused"
