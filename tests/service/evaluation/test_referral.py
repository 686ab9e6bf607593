"""Referral activities: effective inviter per node, fixed and tiered rewards, invitee rewards,
prize caps (also under concurrency), regular exclusivity vs marketing, and a referral
service that is down."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest
from arq import Retry
from sqlalchemy import select

from activity_platform.embedded import free_port
from activity_service.activities.models import Activity
from activity_service.activities.rules import TaskType
from activity_service.evaluation import service as evaluation
from activity_service.evaluation import tasks
from activity_service.evaluation.models import ReferralQualification
from activity_service.evaluation.referral_client import ReferralLookup
from activity_service.tenants.service import tenant_context
from service_kit.http import ServiceClient
from tests.service.evaluation.steps import (
    activity,
    event,
    explain,
    grants,
    invitee_prize_referral,
    money,
    post,
    prizes,
    register_invitees,
    table,
)
from tests.service.harness import Platform


async def test_fixed_reward_invitee_reward_and_prize_cap(platform: Platform) -> None:
    p_inviter, p_invitee = await prizes(platform, 2)
    act = await activity(platform, invitee_prize_referral(p_inviter, p_invitee))
    await register_invitees(platform, "inv", ["a", "b", "c"])
    names = {p_inviter: "inviter-prize", p_invitee: "invitee-prize"}
    assert table(await grants(platform, act["id"]), names) == [
        ("a", "reg:invitee", "invitee-prize"),
        ("b", "reg:invitee", "invitee-prize"),
        ("c", "reg:invitee", "invitee-prize"),
        ("inv", "reg", "inviter-prize"),
        ("inv", "reg", "inviter-prize"),
    ]
    counterparts = sorted(g.counterpart_id for g in await grants(platform, act["id"]))
    assert counterparts == ["a", "b", "inv", "inv", "inv"]
    why = await explain(platform, act["id"], "inv")
    assert "cap_reached" in why["status_hint"] or any(
        o["outcome"] == "cap_reached" for o in why["outcomes"]
    )
    # a user without an inviter earns nothing, and the operator can see why
    await post(platform, event("user.registered", "loner", "2026-12-02T11:00:00+08:00"))
    await platform.drain()
    assert [o["outcome"] for o in (await explain(platform, act["id"], "loner"))["outcomes"]] == [
        "no_inviter"
    ]


async def test_effective_inviter_per_node(platform: Platform) -> None:
    p_open, p_dep = await prizes(platform, 2)
    act = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [
                {"id": "open", "task": "open_account", "prize_id": p_open},
                {
                    "id": "dep",
                    "task": "first_deposit",
                    "threshold": "1000",
                    "currency": "HKD",
                    "prize_id": p_dep,
                },
            ],
        },
    )
    await register_invitees(platform, "reg-inviter", ["a"])
    bound = await platform.referral.post(
        "/v1/bindings",
        json={"invitee_id": "a", "inviter_id": "open-inviter", "node": "account_opening"},
        headers=platform.operator(),
    )
    assert bound.status_code == 201, bound.text
    await platform.drain()
    await post(
        platform,
        event("account.opened", "a", "2026-12-03T10:00:00+08:00"),
        money("cash.deposited", "a", "2026-12-04T10:00:00+08:00", "1500"),
    )
    await platform.drain()
    # account opening: its own inviter; deposit: none bound, so the registration inviter
    assert table(await grants(platform, act["id"])) == [
        ("open-inviter", "open", p_open),
        ("reg-inviter", "dep", p_dep),
    ]


async def test_regular_takes_one_activity_at_a_time_marketing_is_unlimited(
    platform: Platform,
) -> None:
    p1, p2, p3 = await prizes(platform, 3)

    def referral(task: str, prize: str, attribute: str) -> dict[str, Any]:
        return {
            "kind": "referral",
            "attribute": attribute,
            "reward_type": "fixed",
            "rules": [{"id": task, "task": task, "prize_id": prize}],
        }

    first = await activity(platform, referral("register", p1, "regular"))
    second = await activity(platform, referral("open_account", p2, "regular"))
    marketing = await activity(platform, referral("open_account", p3, "marketing"))
    await register_invitees(platform, "inv", ["a"])
    await post(platform, event("account.opened", "a", "2026-12-03T10:00:00+08:00"))
    await platform.drain()
    assert table(await grants(platform, first["id"])) == [("inv", "register", p1)]
    assert await grants(platform, second["id"]) == []
    assert table(await grants(platform, marketing["id"])) == [("inv", "open_account", p3)]
    why = await explain(platform, second["id"], "inv")
    assert why["outcomes"][0]["outcome"] == "in_other_regular_activity"
    # only the regular activity's results count into the invitation totals
    totals = await platform.activity.get(
        "/v1/inviters/inv/invitation-totals", headers=platform.operator()
    )
    assert totals.status_code == 200, totals.text
    assert (totals.json()["regular"], totals.json()["marketing"]) == (1, 1)
    assert totals.json()["regular_activity_id"] == first["id"]
    mine = await platform.activity.get("/v1/me/invitation-totals", headers=platform.user("inv"))
    assert mine.json()["regular"] == 1
    async with platform.db("activity").session() as session:
        rows = (await session.scalars(select(ReferralQualification))).all()
        assert sorted((str(q.activity_id), q.counted) for q in rows) == sorted(
            [(first["id"], True), (marketing["id"], False)]
        )


async def test_tiered_ranges_and_bonus_on_entering(platform: Platform) -> None:
    low, high, bonus = await prizes(platform, 3)
    act = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "regular",
            "reward_type": "tiered",
            "rules": [
                {
                    "id": "r",
                    "task": "register",
                    "tiers": [
                        {"id": "t1", "min_invites": 1, "max_invites": 2, "prize_id": low},
                        {
                            "id": "t2",
                            "min_invites": 3,
                            "max_invites": None,
                            "prize_id": high,
                            "bonus_prize_id": bonus,
                        },
                    ],
                }
            ],
        },
    )
    await register_invitees(platform, "inv", ["a", "b", "c", "d"])
    names = {low: "low", high: "high", bonus: "bonus"}
    rows = await grants(platform, act["id"])
    assert sorted((g.counterpart_id or "-", names[str(g.prize_id)]) for g in rows) == [
        ("-", "bonus"),
        ("a", "low"),
        ("b", "low"),
        ("c", "high"),
        ("d", "high"),
    ]
    # a redelivered binding fact changes nothing
    await post(platform, event("user.registered", "c", "2026-12-02T10:00:00+08:00"))
    await platform.drain()
    assert len(await grants(platform, act["id"])) == 5


async def test_cap_holds_under_concurrent_evaluation(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [{"id": "reg", "task": "register", "prize_id": prize}],
            "prize_limits": [{"prize_id": prize, "max_per_user": 3}],
        },
    )
    db = platform.db("activity")
    async with db.session() as session:
        row = await session.get(Activity, uuid.UUID(act["id"]))
        assert row is not None
        tenant = await tenant_context(session, "tenant-a")

    async def one(invitee: str) -> bool:
        async with db.session() as session:
            ev = evaluation.Evaluation(
                session=session, tenant=tenant, now=platform.clock.now(), referral=None
            )
            grant, _ = await evaluation.write_grant(
                ev,
                row,
                rule_id="reg",
                prize_id=prize,
                task=TaskType.register,
                achieved_at=datetime.fromisoformat("2026-12-02T10:00:00+08:00"),
                user_id="inv",
                app_id=None,
                counterpart_id=invitee,
            )
            await asyncio.sleep(0.05)  # hold the transaction open while others race
            return grant is not None

    results = await asyncio.gather(*(one(f"i{n}") for n in range(10)))
    assert sum(results) == 3
    assert len(await grants(platform, act["id"])) == 3


async def test_referral_service_down_means_retry_never_drop(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [{"id": "reg", "task": "register", "prize_id": prize}],
        },
    )
    body = event("user.registered", "a", "2026-12-02T10:00:00+08:00")
    await post(platform, body)
    dead = platform.settings["activity"].model_copy(
        update={"referral_url": f"http://127.0.0.1:{free_port()}"}
    )
    http = ServiceClient(dead, retries=1)
    ctx = {
        "db": platform.db("activity"),
        "clock": platform.clock,
        "clocks": platform.job_clocks("activity"),
        "http": http,
        "settings": dead,
        "job_try": 1,
    }
    try:
        with pytest.raises(Retry):
            await tasks.evaluate_event.coroutine(
                ctx, {"tenant_id": "tenant-a", "event_id": body["event_id"]}
            )
    finally:
        await http.aclose()
    assert await grants(platform, act["id"]) == []
    # with the service back, the same job grants (here the invitee has no inviter: recorded)
    async with platform.db("activity").session() as session:
        lookup = ReferralLookup(
            platform.apps["activity"].state.http, platform.settings["activity"].referral_url
        )
        await evaluation.evaluate_event(
            session, "tenant-a", body["event_id"], now=platform.clock.now(), referral=lookup
        )
    why = await explain(platform, act["id"], "a")
    assert why["outcomes"][0]["outcome"] == "no_inviter"


async def test_concurrent_evaluations_of_one_invitee_take_one_number_of_the_inviter(
    platform: Platform,
) -> None:
    """Two evaluations of an invitee racing (its task's event and its binding): the one
    that loses the qualification gives its number back, so the next invitee lands in the
    right range."""
    invitees = ["a", "b", "c"]
    await register_invitees(platform, "inv", invitees)  # bound before the activity exists
    low, high = await prizes(platform, 2)
    act = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "tiered",
            "rules": [
                {
                    "id": "r",
                    "task": "register",
                    "tiers": [
                        {"id": "t1", "min_invites": 1, "max_invites": 2, "prize_id": low},
                        {"id": "t2", "min_invites": 3, "max_invites": None, "prize_id": high},
                    ],
                }
            ],
        },
    )
    db = platform.db("activity")
    lookup = ReferralLookup(
        platform.apps["activity"].state.http, platform.settings["activity"].referral_url
    )

    async def evaluate(invitee: str) -> None:
        async with db.session() as session:
            await evaluation.evaluate_invitee(
                session,
                "tenant-a",
                invitee,
                now=platform.clock.now(),
                referral=lookup,
                defer_writes=True,
            )
            await evaluation.write_deferred(session)
            await asyncio.sleep(0.05)  # hold the transaction open while the other races

    for invitee in invitees:
        await asyncio.gather(evaluate(invitee), evaluate(invitee))
    async with db.session() as session:
        rows = (await session.scalars(select(ReferralQualification))).all()
    assert sorted((q.invitee_id, q.seq) for q in rows) == [("a", 1), ("b", 2), ("c", 3)]
    names = {low: "low", high: "high"}
    made = await grants(platform, act["id"])
    assert sorted((g.counterpart_id, names[str(g.prize_id)]) for g in made) == [
        ("a", "low"),
        ("b", "low"),
        ("c", "high"),
    ]
