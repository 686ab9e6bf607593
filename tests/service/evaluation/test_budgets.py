"""Budgets (SPEC §6): a total budget per activity in the base currency and a total quantity
per prize, decided by the database like the per-user caps — in real time, in the daily run
and under concurrency — explained when they refuse, shown in the stats, and given back by
a cancelled reward."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from activity_service.activities.models import Activity
from activity_service.activities.rules import TaskType
from activity_service.evaluation import service as evaluation
from activity_service.evaluation.models import ActivityBudgetSpend
from activity_service.evaluation.referral_client import ReferralLookup
from activity_service.tenants.service import tenant_context
from tests.service.evaluation.steps import WINDOW, activity, event, explain, grants, money, post
from tests.service.evaluation.test_give_back import cancel_record_of
from tests.service.harness import Platform


async def costed_prize(platform: Platform, cost: str, currency: str = "HKD") -> str:
    response = await platform.reward.post(
        "/v1/prizes",
        json={
            "type": "coupon",
            "name": f"Voucher {cost} {currency}",
            "coupon_type": "cash_voucher",
            "title": {"en": "Voucher"},
            "validity": {"days_from_issue": 30},
            "cost_amount": cost,
            "cost_currency": currency,
        },
        headers=platform.operator(),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def stats(platform: Platform, activity_id: str) -> dict[str, Any]:
    response = await platform.activity.get(
        f"/v1/activities/{activity_id}/stats", headers=platform.operator()
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def register(
    platform: Platform, *users: str, when: str = "2026-12-02T10:00:00+08:00"
) -> None:
    await post(platform, *(event("user.registered", u, when) for u in users))
    await platform.drain()


async def test_budget_refuses_what_it_cannot_pay_and_a_cancellation_gives_back(
    platform: Platform,
) -> None:
    prize = await costed_prize(platform, "100")
    act = await activity(
        platform,
        {
            "kind": "basic",
            "issuance_form": "manual",
            "rules": [{"id": "r", "task": "register", "prize_id": prize}],
            "budget": {"amount": "250"},
        },
    )
    assert act["config"]["budget"] == {"amount": "250", "currency": "HKD"}
    assert act["config"]["prize_costs"] == {prize: {"amount": "100.000000", "currency": "HKD"}}
    await register(platform, "u1", "u2", "u3")
    granted = await grants(platform, act["id"])
    assert sorted(g.user_id for g in granted) == ["u1", "u2"]
    assert all(g.budget_cost == Decimal("100") for g in granted)
    why = await explain(platform, act["id"], "u3")
    assert [o["outcome"] for o in why["outcomes"]] == ["budget_exhausted"]
    assert "budget 250" in why["outcomes"][0]["detail"]
    assert why["status_hint"] == "no grant: budget_exhausted"
    left = (await stats(platform, act["id"]))["budget"]
    assert left == {
        "currency": "HKD",
        "amount": "250",
        "spent": "200.000000",
        "remaining": "50.000000",
    }

    # A cancelled reward gives its cost back; the next user is paid from it.
    await cancel_record_of(platform, granted[0])
    left = (await stats(platform, act["id"]))["budget"]
    assert (left["spent"], left["remaining"]) == ("100.000000", "150.000000")
    await register(platform, "u4")
    assert sorted(g.user_id for g in await grants(platform, act["id"])) == ["u1", "u2", "u4"]
    completions = {c["task"]: c["users"] for c in (await stats(platform, act["id"]))["completions"]}
    assert completions["register"] == 4  # u3 completed the task; the budget refused it


async def test_budget_converts_costs_into_the_base_currency(platform: Platform) -> None:
    rate = await platform.activity.post(
        "/v1/fx-rates",
        json={
            "rates": [
                {
                    "source": "USD",
                    "target": "HKD",
                    "rate": "7.8",
                    "effective_at": "2026-11-01T00:00:00Z",
                }
            ]
        },
        headers=platform.operator(),
    )
    assert rate.status_code == 201, rate.text
    usd = await costed_prize(platform, "10", "USD")
    act = await activity(
        platform,
        {
            "kind": "basic",
            "rules": [{"id": "r", "task": "register", "prize_id": usd}],
            "budget": {"amount": "160", "currency": "HKD"},
        },
    )
    await register(platform, "a", "b", "c")
    assert len(await grants(platform, act["id"])) == 2  # 78 + 78 ≤ 160 < 234
    left = (await stats(platform, act["id"]))["budget"]
    assert left["spent"] == "156.000000"


async def test_prize_total_quantity_and_its_give_back(platform: Platform) -> None:
    prize = await costed_prize(platform, "5")
    act = await activity(
        platform,
        {
            "kind": "basic",
            "issuance_form": "manual",
            "rules": [{"id": "r", "task": "register", "prize_id": prize}],
            "prize_totals": [{"prize_id": prize, "total_quantity": 2}],
        },
    )
    await register(platform, "u1", "u2", "u3")
    granted = await grants(platform, act["id"])
    assert len(granted) == 2 and all(g.total_slot for g in granted)
    why = await explain(platform, act["id"], "u3")
    assert [o["outcome"] for o in why["outcomes"]] == ["quantity_exhausted"]
    totals = (await stats(platform, act["id"]))["prize_totals"]
    assert totals == [{"prize_id": prize, "total_quantity": 2, "granted": 2, "remaining": 0}]
    await cancel_record_of(platform, granted[1])
    assert (await stats(platform, act["id"]))["prize_totals"][0]["remaining"] == 1
    await register(platform, "u4")
    assert len(await grants(platform, act["id"])) == 3


async def test_concurrent_grants_race_for_the_last_of_the_budget(platform: Platform) -> None:
    prize = await costed_prize(platform, "100")
    act = await activity(
        platform,
        {
            "kind": "basic",
            "rules": [{"id": "r", "task": "register", "prize_id": prize}],
            "budget": {"amount": "300"},
            "prize_totals": [{"prize_id": prize, "total_quantity": 10}],
        },
    )
    await register(platform, "early1", "early2")  # 100 of the 300 is left
    db = platform.db("activity")
    async with db.session() as session:
        row = await session.get(Activity, uuid.UUID(act["id"]))
        assert row is not None
        tenant = await tenant_context(session, "tenant-a")

    async def one(user: str) -> str:
        async with db.session() as session:
            ev = evaluation.Evaluation(
                session=session, tenant=tenant, now=platform.clock.now(), referral=None
            )
            _, outcome = await evaluation.write_grant(
                ev,
                row,
                rule_id="r",
                prize_id=prize,
                task=TaskType.register,
                achieved_at=datetime.fromisoformat("2026-12-02T10:00:00+08:00"),
                user_id=user,
                app_id=None,
            )
            await asyncio.sleep(0.05)  # hold the transaction open while the others race
            return outcome

    outcomes = await asyncio.gather(*(one(f"racer{n}") for n in range(8)))
    assert sorted(outcomes) == ["budget_exhausted"] * 7 + ["granted"]
    assert len(await grants(platform, act["id"])) == 3
    async with db.session() as session:
        spend = await session.scalar(
            select(ActivityBudgetSpend).where(ActivityBudgetSpend.activity_id == row.id)
        )
        assert spend is not None and spend.spent == Decimal("300")
    # The refused racers gave their slot of the prize total back with their savepoint.
    assert (await stats(platform, act["id"]))["prize_totals"][0]["granted"] == 3


async def test_daily_run_stays_within_budget_and_totals(platform: Platform) -> None:
    cheap, dear = await costed_prize(platform, "30"), await costed_prize(platform, "100")
    act = await activity(
        platform,
        {
            "kind": "basic",
            "rules": [
                {
                    "id": "d",
                    "task": "deposit_reached",
                    "threshold": "1000",
                    "currency": "HKD",
                    "prize_id": dear,
                },
                {
                    "id": "c",
                    "task": "deposit_reached",
                    "threshold": "500",
                    "currency": "HKD",
                    "prize_id": cheap,
                },
            ],
            "budget": {"amount": "290"},
            "prize_totals": [{"prize_id": cheap, "total_quantity": 2}],
        },
    )
    users = [f"d{n}" for n in range(4)]
    await post(
        platform, *(money("cash.deposited", u, "2026-12-02T10:00:00+08:00", "2000") for u in users)
    )
    await platform.drain()
    result = await evaluation.run_daily(
        platform.db("activity"),
        "tenant-a",
        date.fromisoformat("2026-12-02"),
        platform.clock,
        ReferralLookup(
            platform.apps["activity"].state.http, platform.settings["activity"].referral_url
        ),
    )
    assert result.done
    await platform.drain()
    rows = await grants(platform, act["id"])
    # In candidate order (users by id, rules in order): d0 dear + cheap (130), d1 dear +
    # cheap (260, the cheap total of 2 is used up), d2 dear does not fit (360) and cheap
    # has no total left; the budget holds 260.
    assert sorted((g.user_id, g.rule_id) for g in rows) == [
        ("d0", "c"),
        ("d0", "d"),
        ("d1", "c"),
        ("d1", "d"),
    ]
    spent = sum((g.budget_cost or Decimal(0)) for g in rows)
    assert spent == Decimal("260")
    outcomes = {
        o["outcome"] for u in users for o in (await explain(platform, act["id"], u))["outcomes"]
    }
    assert "budget_exhausted" in outcomes
    left = (await stats(platform, act["id"]))["budget"]
    assert Decimal(left["spent"]) == spent and Decimal(left["remaining"]) == Decimal("290") - spent
    # A second run of the same day takes nothing more.
    again = await evaluation.run_daily(
        platform.db("activity"),
        "tenant-a",
        date.fromisoformat("2026-12-02"),
        platform.clock,
        None,
    )
    assert again.grants == 0


async def test_budget_configuration_errors(platform: Platform) -> None:
    costless = (
        await platform.reward.post(
            "/v1/prizes",
            json={
                "type": "coupon",
                "name": "No cost",
                "coupon_type": "other",
                "title": {"en": "No cost"},
                "validity": {"days_from_issue": 30},
            },
            headers=platform.operator(),
        )
    ).json()["id"]
    costed = await costed_prize(platform, "10")
    base: dict[str, Any] = {"kind": "basic", "name": {"en": "Budgeted"}, **WINDOW}

    async def create(body: dict[str, Any]) -> tuple[int, str | None]:
        response = await platform.activity.post(
            "/v1/activities", json={**base, **body}, headers=platform.operator()
        )
        return response.status_code, response.json().get("code")

    rules = [{"task": "register", "prize_id": costed}]
    assert await create(
        {"rules": [{"task": "register", "prize_id": costless}], "budget": {"amount": "100"}}
    ) == (422, "prize_cost_missing")
    assert await create({"rules": rules, "budget": {"amount": "100", "currency": "USD"}}) == (
        422,
        "budget_currency_not_base",
    )
    assert (await create({"rules": rules, "budget": {"amount": "0"}}))[0] == 422
    assert await create(
        {"rules": rules, "prize_totals": [{"prize_id": costless, "total_quantity": 3}]}
    ) == (422, "prize_total_unknown_prize")
    assert await create(
        {"rules": rules, "prize_totals": [{"prize_id": costed, "total_quantity": 0}]}
    ) == (422, "prize_total_invalid")
    twice = [{"prize_id": costed, "total_quantity": 3}] * 2
    assert await create({"rules": rules, "prize_totals": twice}) == (422, "duplicate_prize_total")
    # Without a budget a costless prize is fine; a budget added by an edit checks it.
    status, _ = await create({"rules": [{"task": "register", "prize_id": costless}]})
    assert status == 201
