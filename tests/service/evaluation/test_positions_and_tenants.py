"""Tenant settings, FX rates, the lock-up check, and order-independence of the grants."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activity_service.evaluation import service as evaluation
from tests.service.evaluation.steps import activity, grants, money, post, prizes
from tests.service.harness import Platform


async def test_tenant_settings_defaults_and_update(platform: Platform) -> None:
    got = await platform.activity.get("/v1/tenant-settings", headers=platform.operator())
    assert got.status_code == 200
    assert (got.json()["time_zone"], got.json()["base_currency"]) == ("Asia/Hong_Kong", "HKD")
    bad = await platform.activity.put(
        "/v1/tenant-settings",
        json={"time_zone": "Mars/Olympus", "base_currency": "HKD"},
        headers=platform.operator(),
    )
    assert bad.status_code == 422
    put = await platform.activity.put(
        "/v1/tenant-settings",
        json={"time_zone": "Asia/Shanghai", "base_currency": "CNY", "daily_run_at": "01:15"},
        headers={**platform.operator(), "If-Match": got.headers["ETag"]},
    )
    assert put.status_code == 200 and put.json()["base_currency"] == "CNY"
    assert (got.headers["ETag"], put.headers["ETag"]) == ('"0"', '"1"')
    reader = platform.operator(permissions=["ActivityCenterRead"])
    denied = await platform.activity.put(
        "/v1/tenant-settings", json={"time_zone": "UTC"}, headers=reader
    )
    assert denied.status_code == 403
    other = await platform.activity.get("/v1/tenant-settings", headers=platform.operator("t-b"))
    assert other.json()["time_zone"] == "Asia/Hong_Kong"  # tenants never see each other


async def test_fx_rates_are_validated_and_corrections_replace(platform: Platform) -> None:
    rate = {"source": "USD", "target": "HKD", "rate": "7.8", "effective_at": "2026-12-01T00:00Z"}
    first = await platform.activity.post(
        "/v1/fx-rates", json={"rates": [rate]}, headers=platform.operator()
    )
    assert first.status_code == 201 and first.json()[0]["rate"] == "7.8"
    corrected = await platform.activity.post(
        "/v1/fx-rates", json={"rates": [{**rate, "rate": "7.81"}]}, headers=platform.operator()
    )
    assert corrected.status_code == 201
    listed = await platform.activity.get("/v1/fx-rates", headers=platform.operator())
    assert [r["rate"] for r in listed.json()["items"]] == ["7.81"]
    same = await platform.activity.post(
        "/v1/fx-rates",
        json={"rates": [{**rate, "target": "USD"}]},
        headers=platform.operator(),
    )
    assert same.status_code == 422 and same.json()["code"] == "fx_same_currency"
    negative = await platform.activity.post(
        "/v1/fx-rates", json={"rates": [{**rate, "rate": "-1"}]}, headers=platform.operator()
    )
    assert negative.status_code == 422


async def test_lock_check_answers_from_flows(platform: Platform) -> None:
    await platform.activity.post(
        "/v1/fx-rates",
        json={
            "rates": [
                {
                    "source": "USD",
                    "target": "HKD",
                    "rate": "7.8",
                    "effective_at": "2026-01-01T00:00Z",
                }
            ]
        },
        headers=platform.operator(),
    )
    await post(
        platform,
        money("cash.deposited", "u1", "2026-12-01T10:00:00+00:00", "8000"),
        money("stock.transferred_in", "u1", "2026-12-02T10:00:00+00:00", "1000", "USD"),
        money("cash.withdrawn", "u1", "2026-12-10T10:00:00+00:00", "6000"),
        money("stock.transferred_out", "u1", "2026-12-20T10:00:00+00:00", "1000"),
    )

    async def check(amount: str, since: str, until: str, currency: str = "HKD") -> dict:
        response = await platform.activity.get(
            "/v1/positions/u1/lock-check",
            params={"currency": currency, "amount": amount, "from": since, "until": until},
            headers=platform.service(),
        )
        assert response.status_code == 200, response.text
        return response.json()

    # 8000 + 7800 = 15800 from Dec 2; 9800 after Dec 10; 8800 after Dec 20
    held = await check("9000", "2026-12-03T00:00:00Z", "2026-12-15T00:00:00Z")
    assert held["held"] is True and Decimal(held["min_position"]) == Decimal("9800")
    broken = await check("9000", "2026-12-03T00:00:00Z", "2026-12-25T00:00:00Z")
    assert broken["held"] is False and Decimal(broken["min_position"]) == Decimal("8800")
    assert "below" in broken["reason"]
    no_rate = await check("1", "2026-12-03T00:00:00Z", "2026-12-25T00:00:00Z", "EUR")
    assert no_rate["held"] is False and "FX" in no_rate["reason"]
    as_operator = await platform.activity.get(
        "/v1/positions/u1/lock-check",
        params={
            "currency": "HKD",
            "amount": "1",
            "from": "2026-12-03T00:00:00Z",
            "until": "2026-12-04T00:00:00Z",
        },
        headers=platform.operator(),
    )
    assert as_operator.status_code == 403
    backwards = await platform.activity.get(
        "/v1/positions/u1/lock-check",
        params={
            "currency": "HKD",
            "amount": "1",
            "from": "2026-12-05T00:00:00Z",
            "until": "2026-12-04T00:00:00Z",
        },
        headers=platform.service(),
    )
    assert backwards.status_code == 422 and backwards.json()["code"] == "invalid_period"


async def test_lock_checks_in_one_call_answer_as_each_single_check(platform: Platform) -> None:
    await post(
        platform,
        money("cash.deposited", "u1", "2026-12-01T10:00:00+00:00", "8000"),
        money("cash.withdrawn", "u1", "2026-12-10T10:00:00+00:00", "6000"),
        money("cash.deposited", "u2", "2026-12-01T10:00:00+00:00", "50000"),
    )
    # the same user in another tenant: never counted here
    await post(
        platform, money("cash.deposited", "u3", "2026-12-01T10:00:00+00:00", "90000"), tenant="t-b"
    )
    span = {"from": "2026-12-03T00:00:00Z", "until": "2026-12-15T00:00:00Z"}
    checks = [
        {"user_id": "u1", "currency": "HKD", "amount": "5000", **span},
        {"user_id": "u2", "currency": "HKD", "amount": "10000", **span},
        {"user_id": "u1", "currency": "HKD", "amount": "1000", **span},
        {"user_id": "u3", "currency": "HKD", "amount": "1", **span},
        {"user_id": "u2", "currency": "EUR", "amount": "1", **span},
    ]
    response = await platform.activity.post(
        "/v1/positions/lock-checks", json={"checks": checks}, headers=platform.service()
    )
    assert response.status_code == 200, response.text
    answers = response.json()["answers"]
    assert [a["held"] for a in answers] == [False, True, True, False, False]
    for check, answer in zip(checks, answers, strict=True):
        single = await platform.activity.get(
            f"/v1/positions/{check['user_id']}/lock-check",
            params={k: v for k, v in check.items() if k != "user_id"},
            headers=platform.service(),
        )
        assert single.json() == answer

    async def batch(body: dict, headers: dict[str, str] | None = None) -> tuple[int, str]:
        got = await platform.activity.post(
            "/v1/positions/lock-checks", json=body, headers=headers or platform.service()
        )
        return got.status_code, got.json().get("code", "")

    backwards = {**checks[0], "from": span["until"], "until": span["from"]}
    assert await batch({"checks": [checks[1], backwards]}) == (422, "invalid_period")
    naive = {**checks[0], "from": "2026-12-03T00:00:00"}
    assert await batch({"checks": [naive]}) == (422, "invalid_period")
    assert (await batch({"checks": []}))[0] == 422
    assert (await batch({"checks": [checks[0]] * 501}))[0] == 422
    assert (await batch({"checks": [{**checks[0], "amount": "0"}]}))[0] == 422
    assert (await batch({"checks": [checks[0]]}, platform.operator()))[0] == 403


DAY_EVENTS = [
    ("cash.deposited", "09:00", "30000"),
    ("cash.withdrawn", "10:00", "12000"),
    ("stock.transferred_in", "11:00", "15000"),
    ("cash.deposited", "12:00", "2000"),
    ("stock.transferred_out", "13:00", "4000"),
]


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    order=st.permutations(range(len(DAY_EVENTS))), replays=st.lists(st.integers(0, 4), max_size=3)
)
async def test_replaying_or_reordering_a_days_events_never_changes_grants(
    platform: Platform, order: list[int], replays: list[int]
) -> None:
    """Through the whole service: the same events of one day, in any order and with
    replays, give the same grants (keys, prizes, achieved times)."""
    await platform.truncate()
    run = uuid.uuid4().hex[:6]
    ids = await prizes(platform, 4)
    act = await activity(
        platform,
        {
            "kind": "basic",
            "rules": [
                {
                    "id": "nti",
                    "task": "net_transfer_in",
                    "threshold": "30000",
                    "currency": "HKD",
                    "prize_id": ids[0],
                },
                {
                    "id": "nd",
                    "task": "net_deposit",
                    "threshold": "15000",
                    "currency": "HKD",
                    "prize_id": ids[1],
                },
                {
                    "id": "npt",
                    "task": "net_position_transfer",
                    "threshold": "15000",
                    "currency": "HKD",
                    "prize_id": ids[2],
                },
                {
                    "id": "fd",
                    "task": "first_deposit",
                    "threshold": "30000",
                    "currency": "HKD",
                    "prize_id": ids[3],
                },
            ],
        },
    )
    bodies = [
        {**money(kind, "u1", f"2026-12-02T{hhmm}:00+08:00", amount), "event_id": f"{run}-{i}"}
        for i, (kind, hhmm, amount) in enumerate(DAY_EVENTS)
    ]
    for index in order:
        await post(platform, bodies[index])
        for replay in replays:
            if replay == index:
                await post(platform, bodies[replay])
    await platform.drain()
    await evaluation.run_daily(
        platform.db("activity"), "tenant-a", date(2026, 12, 2), platform.clock, None
    )
    got = sorted((g.rule_id, g.achieved_at.isoformat()) for g in await grants(platform, act["id"]))
    # net transfer in 31000, net deposit 16000, net position transfer 15000 at the end of
    # the day; the first deposit alone reaches 30000
    assert got == [
        ("fd", "2026-12-02T01:00:00+00:00"),
        ("nd", "2026-12-02T05:00:00+00:00"),
        ("npt", "2026-12-02T05:00:00+00:00"),
        ("nti", "2026-12-02T05:00:00+00:00"),
    ]


async def test_daily_flows_per_local_day_with_first_days(platform: Platform) -> None:
    await platform.activity.post(
        "/v1/fx-rates",
        json={
            "rates": [
                {
                    "source": "USD",
                    "target": "HKD",
                    "rate": "7.8",
                    "effective_at": "2026-01-01T00:00Z",
                }
            ]
        },
        headers=platform.operator(),
    )
    await post(
        platform,
        money("cash.deposited", "u1", "2026-11-02T10:00:00+08:00", "100"),
        money("cash.deposited", "u1", "2026-12-01T23:30:00+08:00", "10", "USD"),
        money("cash.withdrawn", "u1", "2026-12-02T00:30:00+08:00", "50"),  # next local day
        money("stock.transferred_in", "u1", "2026-12-02T09:00:00+08:00", "1000"),
    )
    response = await platform.activity.get(
        "/v1/positions/u1/daily-flows",
        params={"from": "2026-12-01"},
        headers=platform.operator(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["currency"], body["first_deposit_day"], body["first_transfer_day"]) == (
        "HKD",
        "2026-11-02",
        "2026-12-02",
    )
    assert [(d["day"], Decimal(d["deposits"]), Decimal(d["net"])) for d in body["days"]] == [
        ("2026-12-01", Decimal("78"), Decimal("78")),
        ("2026-12-02", Decimal("0"), Decimal("950")),
    ]
    no_rate = await platform.activity.get(
        "/v1/positions/u1/daily-flows", params={"currency": "EUR"}, headers=platform.operator()
    )
    assert no_rate.status_code == 422 and no_rate.json()["code"] == "no_fx_rate"
