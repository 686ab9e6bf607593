"""GET /v1/activities/{id}/report: the funnel of a referral campaign (invited → registered →
account opened → first deposit) with conversion rates, the invitees' net inflow in the base
currency, next to the cost per acquired user; checked against a hand count."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tests.service.evaluation.steps import activity, event, invite_code, money, post
from tests.service.harness import Platform
from tests.service.stats.test_activity_stats import coupon, prize, usd_rate

NOW = datetime(2026, 12, 20, 4, 0, tzinfo=UTC)
IN_WINDOW = "2026-12-02T10:00:00+08:00"


async def report(platform: Platform, activity_id: str) -> dict[str, Any]:
    response = await platform.activity.get(
        f"/v1/activities/{activity_id}/report", headers=platform.operator()
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_referral_funnel_inflow_and_cost(platform: Platform) -> None:
    platform.clock.set(NOW)
    await usd_rate(platform)
    p = await prize(platform, coupon("50", "HKD"))
    act = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [{"id": "open", "task": "open_account", "prize_id": p}],
        },
    )
    code = await invite_code(platform, "ivy")
    await post(
        platform,
        *[event("user.registered", u, IN_WINDOW, invite_code=code) for u in "abcd"],
        event("user.registered", "organic", IN_WINDOW),  # no invite code: not invited
        # through another activity's share link: that activity's invitee
        event(
            "user.registered",
            "shared",
            IN_WINDOW,
            invite_code=code,
            channel="share_link",
            activity_code="OTHER-CAMPAIGN",
        ),
        event("user.registered", "early", "2026-11-20T10:00:00+08:00", invite_code=code),
    )
    await platform.drain()
    await post(
        platform,
        *[event("account.opened", u, "2026-12-03T10:00:00+08:00") for u in "abc"],
        event("account.opened", "organic", "2026-12-03T10:00:00+08:00"),
        money("cash.deposited", "a", "2026-12-04T10:00:00+08:00", "10000"),
        money("cash.deposited", "b", "2026-12-04T10:00:00+08:00", "1000", "USD"),
        money("cash.withdrawn", "b", "2026-12-05T10:00:00+08:00", "200", "USD"),
        money("stock.transferred_in", "d", "2026-12-05T10:00:00+08:00", "500"),
        money("cash.deposited", "organic", "2026-12-04T10:00:00+08:00", "99999"),
        # deposits in another currency with no rate: listed, not converted
        money("cash.deposited", "c", "2026-12-06T10:00:00+08:00", "30", "SGD"),
    )
    await platform.drain()

    body = await report(platform, act["id"])
    assert body["cohort"] == "invitees"
    # c's first deposit is in SGD: it counts as a first deposit too
    assert [(s["stage"], s["users"]) for s in body["funnel"]] == [
        ("invited", 4),
        ("registered", 4),
        ("account_opened", 3),
        ("first_deposit", 3),
    ]
    rates = [(s["rate_from_previous"], s["rate_from_start"]) for s in body["funnel"]]
    assert rates == [(None, None), ("1.0000", "1.0000"), ("0.7500", "0.7500"), ("1.0000", "0.7500")]
    inflow = body["net_inflow"]
    assert {(c["currency"], Decimal(c["amount"]), c["users"]) for c in inflow["by_currency"]} == {
        ("HKD", Decimal("10500"), 2),
        ("SGD", Decimal("30"), 1),
        ("USD", Decimal("800"), 1),
    }
    # 10,000 + 500 HKD + 800 USD × 7.8; SGD has no rate
    assert Decimal(inflow["total"]) == Decimal("16740") and inflow["complete"] is False
    assert body["trading_volume"] is None
    # three qualifying invitees earned ivy a 50 HKD coupon each
    assert body["acquired_users"] == 3
    assert Decimal(body["cost"]["total"]) == Decimal("150")
    assert Decimal(body["cost_per_acquired_user"]) == Decimal("50")
    assert Decimal(body["cost_per_first_deposit"]) == Decimal("50")


async def test_basic_campaign_counts_its_participants(platform: Platform) -> None:
    platform.clock.set(NOW)
    p = await prize(platform, coupon())
    act = await activity(
        platform, {"kind": "basic", "rules": [{"id": "reg", "task": "register", "prize_id": p}]}
    )
    await post(
        platform,
        event("user.registered", "x", IN_WINDOW),
        event("user.registered", "y", IN_WINDOW),
        event("account.opened", "x", "2026-12-03T10:00:00+08:00"),
    )
    await platform.drain()
    body = await report(platform, act["id"])
    assert body["cohort"] == "participants"
    assert [(s["stage"], s["users"]) for s in body["funnel"]] == [
        ("took_part", 2),
        ("registered", 2),
        ("account_opened", 1),
        ("first_deposit", 0),
    ]
    assert body["funnel"][3]["rate_from_previous"] == "0.0000"
    assert body["net_inflow"]["by_currency"] == [] and body["net_inflow"]["complete"] is True
    assert body["cost_per_first_deposit"] is None


async def test_report_permissions_tenants_and_unknown_activity(platform: Platform) -> None:
    p = await prize(platform, coupon())
    act = await activity(
        platform, {"kind": "basic", "rules": [{"id": "reg", "task": "register", "prize_id": p}]}
    )
    path = f"/v1/activities/{act['id']}/report"
    reader = platform.operator(permissions=["ActivityCenterRead"])
    assert (await platform.activity.get(path, headers=reader)).status_code == 200
    rights_only = platform.operator(permissions=["RightsSystemFull"])
    for headers in (rights_only, platform.user("u1"), platform.service()):
        assert (await platform.activity.get(path, headers=headers)).status_code == 403
    assert (await platform.activity.get(path)).status_code == 401
    other = await platform.activity.get(path, headers=platform.operator("tenant-b"))
    assert other.status_code == 404 and other.json()["code"] == "activity_not_found"
    bad = await platform.activity.get(
        "/v1/activities/not-a-uuid/report", headers=platform.operator()
    )
    assert bad.status_code == 422
