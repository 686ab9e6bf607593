"""GET /v1/activities/{id}/stats (SPEC §5 "How is the campaign doing?"): basic, referral and
non-standard activities driven through events and the real workers, each number checked
against a hand count; reward_service unreachable; permissions and tenants."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from activity_platform.embedded import free_port
from activity_service.stats.endpoints import reward_stats_client
from activity_service.stats.reward_client import RewardStatsClient
from contracts.payloads import Grant, IssuanceForm
from reward_service.records import service as records
from service_kit.http import ServiceClient
from tests.service.evaluation.steps import (
    activity,
    event,
    invitee_prize_referral,
    money,
    post,
    register_invitees,
)
from tests.service.harness import Platform
from tests.service.stats.conftest import BLOCKED_USER
from tests.service.teams.steps import assist, started, team_activity

NOW = datetime(2026, 12, 20, 4, 0, tzinfo=UTC)


async def prize(platform: Platform, body: dict[str, Any], tenant: str = "tenant-a") -> str:
    response = await platform.reward.post(
        "/v1/prizes", json=body, headers=platform.operator(tenant)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def coupon(cost: str | None = None, currency: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "coupon",
        "name": "Market data card",
        "coupon_type": "market_data",
        "title": {"en": "Market data card"},
        "validity": {"days_from_issue": 30},
    }
    if cost is not None:
        body |= {"cost_amount": cost, "cost_currency": currency}
    return body


async def usd_rate(platform: Platform, rate: str = "7.8") -> None:
    response = await platform.activity.post(
        "/v1/fx-rates",
        json={
            "rates": [
                {
                    "source": "USD",
                    "target": "HKD",
                    "rate": rate,
                    "effective_at": "2026-11-01T00:00:00+00:00",
                }
            ]
        },
        headers=platform.operator(),
    )
    assert response.status_code == 201, response.text


async def stats(
    platform: Platform, activity_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = await platform.activity.get(
        f"/v1/activities/{activity_id}/stats", headers=headers or platform.operator()
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def by_type(body: dict[str, Any]) -> dict[str, tuple[int, Decimal, bool]]:
    return {
        t["prize_type"]: (t["records"], Decimal(t["amount"]), t["complete"])
        for t in body["cost"]["by_type"]
    }


def statuses(body: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in body["rewards"].items() if k != "source"}


async def basic_campaign(platform: Platform) -> dict[str, Any]:
    """Register → coupon costing USD 10; account opening → umbrella costing HKD 50;
    first deposit ≥ HKD 1,000 → HKD 100 cash."""
    platform.clock.set(NOW)
    await usd_rate(platform)
    p_coupon = await prize(platform, coupon("10", "USD"))
    p_umbrella = await prize(
        platform,
        {
            "type": "physical",
            "name": "Umbrella",
            "stock": 10,
            "cost_amount": "50",
            "cost_currency": "HKD",
        },
    )
    p_cash = await prize(
        platform, {"type": "cash", "name": "HKD 100", "amount": "100.00", "currency": "HKD"}
    )
    act = await activity(
        platform,
        {
            "kind": "basic",
            "rules": [
                {"id": "reg", "task": "register", "prize_id": p_coupon},
                {"id": "open", "task": "open_account", "prize_id": p_umbrella},
                {
                    "id": "dep",
                    "task": "first_deposit",
                    "threshold": "1000",
                    "currency": "HKD",
                    "prize_id": p_cash,
                },
            ],
        },
    )
    await post(
        platform,
        event("user.registered", "early", "2026-11-30T23:00:00+08:00"),  # before the window
        event("user.registered", "u1", "2026-12-02T10:00:00+08:00"),
        event("account.opened", "u1", "2026-12-03T10:00:00+08:00"),
        event("user.registered", "u2", "2026-12-02T11:00:00+08:00"),
        event("account.opened", "u3", "2026-12-04T10:00:00+08:00"),
        money("cash.deposited", "u4", "2026-12-05T10:00:00+08:00", "1500"),
        money("cash.deposited", "u5", "2026-12-05T11:00:00+08:00", "500"),  # below threshold
        money("cash.deposited", BLOCKED_USER, "2026-12-05T12:00:00+08:00", "2000"),
    )
    await platform.drain()
    return act


async def test_basic_activity_stats(platform: Platform, stats_cash: str) -> None:
    act = await basic_campaign(platform)
    body = await stats(platform, act["id"])
    assert body["activity_code"] == act["activity_code"]
    assert (body["kind"], body["status"], body["reward_service_available"]) == (
        "basic",
        "running",
        True,
    )
    # u1 u2 u3 u4, u5 (deposited too little) and the blocked user; "early" acted outside
    assert body["participants"] == {
        "users": 6,
        "inviters": None,
        "invitees": None,
        "initiators": None,
        "helpers": None,
    }
    assert body["teams"] is None
    assert body["completions"] == [
        {"task": "first_deposit", "users": 2},
        {"task": "open_account", "users": 2},
        {"task": "register", "users": 2},
    ]
    # 2 coupons, 2 umbrellas, 1 paid cash reward issued; the blocked user's cash refused
    assert statuses(body) == {
        "pending": 0,
        "issuing": 0,
        "issued": 5,
        "failed": 1,
        "cancelled": 0,
        "locked": 0,
        "all": 6,
        "not_yet_recorded": 0,
    }
    assert body["rewards"]["source"] == "reward_service"
    # coupons 2 × USD 10 × 7.8; umbrellas 2 × HKD 50; cash HKD 100 (the refused one costs 0)
    assert by_type(body) == {
        "coupon": (2, Decimal("156"), True),
        "physical": (2, Decimal("100"), True),
        "cash": (1, Decimal("100"), True),
    }
    coupon_cost = next(t for t in body["cost"]["by_type"] if t["prize_type"] == "coupon")
    assert [(c["currency"], Decimal(c["amount"])) for c in coupon_cost["by_currency"]] == [
        ("USD", Decimal("20"))
    ]
    assert body["cost"]["currency"] == "HKD"
    assert Decimal(body["cost"]["total"]) == Decimal("356")
    assert body["cost"]["complete"] is True and body["cost"]["unconverted"] == []
    # rewarded users: u1 (coupon + umbrella), u2, u3, u4
    assert (body["acquired_users"], body["acquired_users_basis"]) == (4, "rewarded_users")
    assert Decimal(body["cost_per_acquired_user"]) == Decimal("89")


async def test_reward_service_unreachable_falls_back_to_the_grant_ledger(
    platform: Platform, stats_cash: str
) -> None:
    act = await basic_campaign(platform)
    dead = platform.settings["activity"].model_copy(
        update={"reward_url": f"http://127.0.0.1:{free_port()}"}
    )
    http = ServiceClient(dead, retries=1)
    app = platform.apps["activity"]
    app.dependency_overrides[reward_stats_client] = lambda: RewardStatsClient(http, dead.reward_url)
    try:
        body = await stats(platform, act["id"])
    finally:
        app.dependency_overrides.pop(reward_stats_client, None)
        await http.aclose()
    assert body["reward_service_available"] is False
    assert body["rewards"]["source"] == "grant_ledger"
    # the statuses reward_service reported back to the grant ledger
    assert statuses(body) == {
        "pending": 0,
        "issuing": 0,
        "issued": 5,
        "failed": 1,
        "cancelled": 0,
        "locked": 0,
        "all": 6,
        "not_yet_recorded": 0,
    }
    assert body["cost"] is None and body["cost_per_acquired_user"] is None
    assert body["acquired_users"] == 4
    assert body["participants"]["users"] == 6
    # back again: the authoritative answer
    assert (await stats(platform, act["id"]))["reward_service_available"] is True


async def test_referral_activity_stats(platform: Platform) -> None:
    platform.clock.set(NOW)
    await usd_rate(platform)
    p_inviter = await prize(platform, coupon("5", "HKD"))
    p_invitee = await prize(platform, coupon("2", "USD"))
    act = await activity(platform, invitee_prize_referral(p_inviter, p_invitee))
    await register_invitees(platform, "inv", ["a", "b", "c"])
    await register_invitees(platform, "inv2", ["d"])
    # an organic sign-up is no participant of the referral campaign
    await post(platform, event("user.registered", "loner", "2026-12-02T11:00:00+08:00"))
    await platform.drain()

    body = await stats(platform, act["id"])
    assert body["participants"] == {
        "users": 6,
        "inviters": 2,
        "invitees": 4,
        "initiators": None,
        "helpers": None,
    }
    assert body["completions"] == [{"task": "register", "users": 4}]
    # inv: 2 (capped, c still qualifies), inv2: 1, each of a b c d: 1
    assert statuses(body) == {
        "pending": 0,
        "issuing": 0,
        "issued": 7,
        "failed": 0,
        "cancelled": 0,
        "locked": 0,
        "all": 7,
        "not_yet_recorded": 0,
    }
    # inviter coupons 3 × HKD 5; invitee coupons 4 × USD 2 × 7.8
    assert by_type(body) == {
        "coupon": (7, Decimal("77.4"), True),
        "physical": (0, Decimal("0"), True),
        "cash": (0, Decimal("0"), True),
    }
    assert Decimal(body["cost"]["total"]) == Decimal("77.4")
    assert (body["acquired_users"], body["acquired_users_basis"]) == (4, "qualifying_invitees")
    assert Decimal(body["cost_per_acquired_user"]) == Decimal("19.35")


async def test_non_standard_counts_rewards_issued_under_its_code(platform: Platform) -> None:
    platform.clock.set(NOW)
    p_sgd = await prize(platform, coupon("3", "SGD"))  # no SGD rate: left unconverted
    p_free = await prize(platform, coupon())  # no cost at all
    created = await platform.activity.post(
        "/v1/activities",
        json={"kind": "non_standard", "name": {"en": "VIP thanks"}, "cost_type": "rebate"},
        headers=platform.operator(),
    )
    assert created.status_code == 201, created.text
    act = created.json()
    async with platform.db("reward").session() as session:
        for n, (user, prize_id) in enumerate(
            [("v1", p_sgd), ("v1", p_sgd), ("v2", p_sgd), ("v3", p_free)]
        ):
            await records.create_from_grant(
                session,
                Grant(
                    tenant_id="tenant-a",
                    grant_key=f"manual-{n}",
                    activity_code=act["activity_code"],
                    activity_name="VIP thanks",
                    rule_id="manual",
                    user_id=user,
                    app_id="broker-app",
                    counterpart_id=None,
                    task="manual",
                    achieved_at=NOW,
                    prize_id=prize_id,
                    issuance_form=IssuanceForm("automatic"),
                ),
                NOW,
            )
    await platform.drain()
    body = await stats(platform, act["id"])
    assert body["kind"] == "non_standard"
    assert body["participants"]["users"] == 3 and body["completions"] == []
    assert (body["rewards"]["issued"], body["rewards"]["all"]) == (4, 4)
    cost = body["cost"]
    assert cost["complete"] is False and Decimal(cost["total"]) == 0
    assert [(u["currency"], Decimal(u["amount"]), u["records"]) for u in cost["unconverted"]] == [
        ("SGD", Decimal("9"), 3)
    ]
    assert cost["uncosted_records"] == 1
    assert (body["acquired_users"], body["cost_per_acquired_user"]) == (3, None)


async def test_permissions_tenants_and_unknown_activity(platform: Platform) -> None:
    p = await prize(platform, coupon())
    act = await activity(
        platform, {"kind": "basic", "rules": [{"id": "reg", "task": "register", "prize_id": p}]}
    )
    path = f"/v1/activities/{act['id']}/stats"
    reader = platform.operator(permissions=["ActivityCenterRead"])
    assert (await platform.activity.get(path, headers=reader)).status_code == 200
    rights_only = platform.operator(permissions=["RightsSystemFull"])
    for headers in (rights_only, platform.user("u1"), platform.service()):
        response = await platform.activity.get(path, headers=headers)
        assert response.status_code == 403, (headers, response.text)
    assert (await platform.activity.get(path)).status_code == 401
    other = await platform.activity.get(path, headers=platform.operator("tenant-b"))
    assert other.status_code == 404 and other.json()["code"] == "activity_not_found"
    missing = await platform.activity.get(
        "/v1/activities/00000000-0000-0000-0000-000000000000/stats", headers=platform.operator()
    )
    assert missing.status_code == 404 and missing.json()["code"] == "activity_not_found"


async def test_team_activity_stats(platform: Platform) -> None:
    p_init = await prize(platform, coupon("20", "HKD"))
    p_help = await prize(platform, coupon("1", "HKD"))
    act = await team_activity(platform, p_init, [{"segment_id": None, "prize_id": p_help}])
    first = await started(platform, act["id"], "ini1")
    for helper in ("h1", "h2"):
        assert (await assist(platform, first["id"], helper)).status_code == 201
    second = await started(platform, act["id"], "ini2")
    assert (await assist(platform, second["id"], "h3")).status_code == 201
    await platform.drain()

    body = await stats(platform, act["id"])
    assert body["participants"] == {
        "users": 5,
        "inviters": None,
        "invitees": None,
        "initiators": 2,
        "helpers": 3,
    }
    assert body["teams"] == {"started": 2, "succeeded": 1}
    # ini1's team is full; every helper is rewarded for helping, ini2 not yet
    assert body["completions"] == [
        {"task": "team_assist", "users": 3},
        {"task": "team_initiator", "users": 1},
    ]
    assert (body["rewards"]["issued"], body["rewards"]["all"]) == (4, 4)
    assert by_type(body)["coupon"] == (4, Decimal("23"), True)
    assert body["acquired_users"] == 4
    assert Decimal(body["cost_per_acquired_user"]) == Decimal("5.75")
