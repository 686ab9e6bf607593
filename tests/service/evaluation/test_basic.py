"""Basic activities: real-time action tasks, download, first deposit with FX, attributes,
target segment, caps of the daily run, and the T+1 settlement."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from activity_service.evaluation import daily_run
from activity_service.evaluation import service as evaluation
from activity_service.evaluation.referral_client import ReferralLookup
from tests.service.evaluation.steps import (
    activity,
    announced,
    event,
    explain,
    grants,
    money,
    post,
    prizes,
    table,
)
from tests.service.harness import Platform


async def sent_payload(platform: Platform, grant_key: str) -> dict[str, Any]:
    """The payload the grant's ``reward.create_from_grant`` message gives the reward
    service."""
    (payload,) = (await announced(platform))[grant_key]
    return payload


def lookup(platform: Platform) -> ReferralLookup:
    return ReferralLookup(
        platform.apps["activity"].state.http, platform.settings["activity"].referral_url
    )


async def run_daily(platform: Platform, day: str, tenant: str = "tenant-a") -> int:
    result = await evaluation.run_daily(
        platform.db("activity"), tenant, date.fromisoformat(day), platform.clock, lookup(platform)
    )
    assert result.done
    await platform.drain()
    return result.grants


async def test_real_time_action_tasks_in_window_only(platform: Platform) -> None:
    p_reg, p_open, p_ent, p_any = await prizes(platform, 4)
    act = await activity(
        platform,
        {
            "kind": "basic",
            "rules": [
                {"id": "reg", "task": "register", "prize_id": p_reg},
                {"id": "open", "task": "open_account", "prize_id": p_open},
                {
                    "id": "ent",
                    "task": "enterprise_certification",
                    "prize_id": p_ent,
                    "enterprise_id": "ent-42",
                },
                {"id": "any-ent", "task": "enterprise_certification", "prize_id": p_any},
            ],
        },
    )
    await post(
        platform,
        event("user.registered", "early", "2026-11-30T23:59:59+08:00"),  # before the window
        event("user.registered", "u1", "2026-12-01T00:00:00+08:00"),
        event("account.opened", "u1", "2026-12-03T10:00:00+08:00"),
        event(
            "enterprise.certified",
            "u1",
            "2026-12-04T10:00:00+08:00",
            enterprise_id="ent-7",
            enterprise_name="Seven Ltd",
        ),
        event("account.opened", "late", "2027-01-01T00:00:00+08:00"),  # end is exclusive
    )
    await platform.drain()
    rows = await grants(platform, act["id"])
    assert table(rows) == [
        ("u1", "any-ent", p_any),
        ("u1", "open", p_open),
        ("u1", "reg", p_reg),
    ]
    certified = next(g for g in rows if g.rule_id == "any-ent")
    assert (await sent_payload(platform, certified.grant_key))["enterprise_name"] == "Seven Ltd"
    records = await platform.reward.get(
        "/v1/reward-records",
        params={"activity_code": act["activity_code"]},
        headers=platform.operator(),
    )
    assert len(records.json()["items"]) == 3
    # the operator can see why the early and the late user earned nothing
    assert [o["outcome"] for o in (await explain(platform, act["id"], "early"))["outcomes"]] == [
        "outside_window"
    ]
    late = await explain(platform, act["id"], "late")
    assert [(o["rule_id"], o["outcome"]) for o in late["outcomes"]] == [("open", "outside_window")]
    # replaying everything and draining again changes nothing
    await post(platform, event("user.registered", "u1", "2026-12-01T00:00:00+08:00"))
    await platform.drain()
    assert len(await grants(platform, act["id"])) == 3


async def test_download_needs_a_device_never_seen_for_any_user(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform,
        {"kind": "basic", "rules": [{"id": "dl", "task": "download", "prize_id": prize}]},
    )
    # one batch: the order the logins are evaluated in must not matter
    await post(
        platform,
        event("user.registered", "alice", "2026-12-02T10:00:00+08:00"),
        event("app.login", "alice", "2026-12-02T10:05:00+08:00", device_id="phone-1"),
        event("user.registered", "bob", "2026-12-02T11:00:00+08:00"),
        # the same phone for a second account earns nothing
        event("app.login", "bob", "2026-12-02T11:05:00+08:00", device_id="phone-1"),
        # a login before registering counts once the user registers
        event("app.login", "carol", "2026-12-03T09:00:00+08:00", device_id="phone-3"),
    )
    await platform.drain()
    await post(platform, event("user.registered", "carol", "2026-12-03T09:30:00+08:00"))
    await platform.drain()
    rows = await grants(platform, act["id"])
    assert sorted((g.user_id, g.achieved_at.isoformat()) for g in rows) == [
        ("alice", "2026-12-02T02:05:00+00:00"),
        ("carol", "2026-12-03T01:30:00+00:00"),
    ]


async def test_first_deposit_in_real_time_with_fx_and_history(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    rates = await platform.activity.post(
        "/v1/fx-rates",
        json={
            "rates": [
                {
                    "source": "USD",
                    "target": "HKD",
                    "rate": "7.8",
                    "effective_at": "2026-01-01T00:00:00+00:00",
                }
            ]
        },
        headers=platform.operator(),
    )
    assert rates.status_code == 201, rates.text
    act = await activity(
        platform,
        {
            "kind": "basic",
            "rules": [
                {
                    "id": "fd",
                    "task": "first_deposit",
                    "threshold": "1000",
                    "currency": "HKD",
                    "prize_id": prize,
                    "lock_up": {"amount": "1000", "currency": "HKD", "days": 30},
                }
            ],
        },
    )
    await post(
        platform,
        # 100 USD = 780 HKD: not yet
        money("cash.deposited", "u1", "2026-12-05T09:00:00+08:00", "100", "USD"),
        # an old customer: first deposit in history was before the window
        money("cash.deposited", "old", "2026-10-05T09:00:00+08:00", "5", "HKD"),
        money("cash.deposited", "old", "2026-12-05T09:00:00+08:00", "5000", "HKD"),
    )
    await platform.drain()
    assert await grants(platform, act["id"]) == []
    # + 40 USD the same local day: 1092 HKD
    await post(platform, money("cash.deposited", "u1", "2026-12-05T22:00:00+08:00", "40", "USD"))
    await platform.drain()
    rows = await grants(platform, act["id"])
    assert [(g.user_id, g.achieved_at.isoformat()) for g in rows] == [
        ("u1", "2026-12-05T14:00:00+00:00")
    ]
    # the lock-up terms travel with the grant; the reward record waits in Locked
    assert (await sent_payload(platform, rows[0].grant_key))["lock_up"] == {
        "amount": "1000",
        "currency": "HKD",
        "days": 30,
        "issue_after_lock": True,
    }
    records = await platform.reward.get(
        "/v1/reward-records",
        params={"activity_code": act["activity_code"]},
        headers=platform.operator(),
    )
    assert [r["status"] for r in records.json()["items"]] == ["locked"]
    # the deposit node of the referral graph completed with the first deposit
    bindings = await platform.referral.get("/v1/bindings/u1", headers=platform.operator())
    deposit = next(n for n in bindings.json()["nodes"] if n["node"] == "deposit")
    assert deposit["completed_at"] == "2026-12-05T01:00:00Z"


async def test_new_user_and_old_user_attributes(platform: Platform) -> None:
    p1, p2, p3 = await prizes(platform, 3)
    new_reg = await activity(
        platform,
        {
            "kind": "basic",
            "attribute": "new_user",
            "rules": [{"id": "r", "task": "register", "prize_id": p1}],
        },
    )
    old_open = await activity(
        platform,
        {
            "kind": "basic",
            "attribute": "old_user",
            "rules": [{"id": "o", "task": "open_account", "prize_id": p2}],
        },
    )
    new_open = await activity(
        platform,
        {
            "kind": "basic",
            "attribute": "new_user",
            "rules": [{"id": "n", "task": "open_account", "prize_id": p3}],
        },
    )
    await post(
        platform,
        event("user.registered", "fresh", "2026-12-02T10:00:00+08:00"),
        event("account.opened", "stranger", "2026-12-02T10:00:00+08:00"),
    )
    await platform.drain()
    await post(platform, event("account.opened", "fresh", "2026-12-03T10:00:00+08:00"))
    await platform.drain()
    assert table(await grants(platform, new_reg["id"])) == [("fresh", "r", p1)]
    # fresh received a new-user reward, so is an old user now
    assert table(await grants(platform, old_open["id"])) == [("fresh", "o", p2)]
    # stranger never received a new-user reward: a new user
    assert table(await grants(platform, new_open["id"])) == [("stranger", "n", p3)]
    why = await explain(platform, new_open["id"], "fresh")
    assert [o["outcome"] for o in why["outcomes"]] == ["not_new_user"]
    why_not_old = await explain(platform, old_open["id"], "stranger")
    assert [o["outcome"] for o in why_not_old["outcomes"]] == ["not_old_user"]


async def test_target_segment_with_refresh_delay(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    segment = await platform.activity.post(
        "/v1/segments", json={"name": "vip", "source": "upload"}, headers=platform.operator()
    )
    assert segment.status_code == 201, segment.text
    seg_id = segment.json()["id"]
    uploaded = await platform.activity.put(
        f"/v1/segments/{seg_id}/members", json=["vip-1"], headers=platform.operator()
    )
    assert uploaded.status_code == 200, uploaded.text
    act = await activity(
        platform,
        {
            "kind": "basic",
            "segment_id": seg_id,
            "segment_refresh": "5m",
            "rules": [{"id": "r", "task": "register", "prize_id": prize}],
        },
    )
    await post(
        platform,
        event("user.registered", "vip-1", "2026-12-02T10:00:00+08:00"),
        event("user.registered", "nobody", "2026-12-02T10:00:00+08:00"),
    )
    await platform.drain()
    assert [g.user_id for g in await grants(platform, act["id"])] == ["vip-1"]
    why = await explain(platform, act["id"], "nobody")
    assert why["outcomes"][0]["outcome"] == "not_in_segment"


NET_DEPOSIT_TIERS = [("t10k", "10000"), ("t50k", "50000"), ("t100k", "100000")]


async def _tiered_activity(platform: Platform, timing: str) -> tuple[dict, dict[str, str]]:
    ids = await prizes(platform, 3)
    names = {pid: tier for pid, (tier, _) in zip(ids, NET_DEPOSIT_TIERS, strict=True)}
    act = await activity(
        platform,
        {
            "kind": "basic",
            "timing": timing,
            "rules": [
                {
                    "id": tier,
                    "task": "net_deposit",
                    "threshold": threshold,
                    "currency": "HKD",
                    "prize_id": pid,
                }
                for pid, (tier, threshold) in zip(ids, NET_DEPOSIT_TIERS, strict=True)
            ],
        },
    )
    return act, names


async def test_daily_run_grants_each_tier_once_and_is_idempotent(platform: Platform) -> None:
    act, names = await _tiered_activity(platform, "real_time")
    await post(
        platform,
        money("cash.deposited", "u1", "2026-12-02T10:00:00+08:00", "30000"),
        money("cash.withdrawn", "u1", "2026-12-02T15:00:00+08:00", "5000"),
        money("cash.deposited", "u2", "2026-12-02T23:59:00+08:00", "9999"),
        money("cash.deposited", "u1", "2026-12-03T10:00:00+08:00", "80000"),
    )
    await platform.drain()
    assert await grants(platform, act["id"]) == []  # amount tasks wait for the daily run

    assert await run_daily(platform, "2026-12-02") == 1
    assert table(await grants(platform, act["id"]), names) == [("u1", "t10k", "t10k")]
    assert await run_daily(platform, "2026-12-02") == 0  # run twice: nothing new

    # Dec 3: u1 at 105000 reaches both higher tiers at once; they stack
    assert await run_daily(platform, "2026-12-03") == 2
    assert table(await grants(platform, act["id"]), names) == [
        ("u1", "t100k", "t100k"),
        ("u1", "t10k", "t10k"),
        ("u1", "t50k", "t50k"),
    ]
    t50 = next(g for g in await grants(platform, act["id"]) if g.rule_id == "t50k")
    assert t50.achieved_at.isoformat() == "2026-12-03T02:00:00+00:00"
    # a fall below a tier later takes nothing back, and nothing is granted twice
    await post(platform, money("cash.withdrawn", "u1", "2026-12-04T10:00:00+08:00", "100000"))
    assert await run_daily(platform, "2026-12-04") == 0
    records = await platform.reward.get(
        "/v1/reward-records",
        params={"activity_code": act["activity_code"]},
        headers=platform.operator(),
    )
    assert len(records.json()["items"]) == 3


async def test_daily_run_resumes_after_a_crash_midway(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    act, names = await _tiered_activity(platform, "real_time")
    users = [f"u{i}" for i in range(5)]
    await post(
        platform,
        *[money("cash.deposited", u, "2026-12-02T10:00:00+08:00", "20000") for u in users],
    )
    await platform.drain()
    real = daily_run.decide_basic
    seen: list[str] = []

    def crash_on_third(scope, facts, tenant, shared=None):  # type: ignore[no-untyped-def]
        seen.append(facts.user_id)
        if len(seen) == 3:
            raise RuntimeError("worker killed")
        return real(scope, facts, tenant, shared)

    # users are decided in chunks of two, one transaction each: the second chunk dies
    monkeypatch.setattr(daily_run, "decide_basic", crash_on_third)
    with pytest.raises(RuntimeError):
        await evaluation.run_daily(
            platform.db("activity"),
            "tenant-a",
            date(2026, 12, 2),
            platform.clock,
            None,
            chunk_size=2,
        )
    assert len(await grants(platform, act["id"])) == 2
    monkeypatch.setattr(daily_run, "decide_basic", real)
    seen.clear()
    assert await run_daily(platform, "2026-12-02") == 3  # resumed after the last saved chunk
    assert table(await grants(platform, act["id"]), names) == [(u, "t10k", "t10k") for u in users]
    async with platform.db("activity").session() as session:
        from activity_service.evaluation.repository import EvaluationRepository

        run = await EvaluationRepository.from_session(session).get_run(
            "tenant-a", date(2026, 12, 2)
        )
        assert run is not None and run.status == "done" and run.grants == 5


async def test_at_end_settles_on_t_plus_1_with_the_highest_tier_only(platform: Platform) -> None:
    act, names = await _tiered_activity(platform, "at_end")
    (reg_prize,) = await prizes(platform, 1)
    reg = await activity(
        platform,
        {
            "kind": "basic",
            "timing": "at_end",
            "rules": [{"id": "reg", "task": "register", "prize_id": reg_prize}],
        },
    )
    await post(
        platform,
        event("user.registered", "u1", "2026-12-02T09:00:00+08:00"),
        money("cash.deposited", "u1", "2026-12-02T10:00:00+08:00", "120000"),
        money("cash.withdrawn", "u1", "2026-12-20T10:00:00+08:00", "65000"),
        money("cash.deposited", "u2", "2026-12-31T23:00:00+08:00", "10000"),
        money("cash.deposited", "u3", "2027-01-01T00:30:00+08:00", "90000"),  # after the end
    )
    await platform.drain()
    for day in ("2026-12-02", "2026-12-20", "2026-12-30"):
        await run_daily(platform, day)
    assert await grants(platform, act["id"]) == [] and await grants(platform, reg["id"]) == []
    # the run of the last day (Dec 31) happens on T+1
    await run_daily(platform, "2026-12-31")
    assert table(await grants(platform, act["id"]), names) == [
        ("u1", "t50k", "t50k"),  # 55000 over the window: the highest reached tier only
        ("u2", "t10k", "t10k"),
    ]
    assert [g.user_id for g in await grants(platform, reg["id"])] == ["u1"]
    await run_daily(platform, "2027-01-01")  # a catch-up run settles nothing twice
    assert len(await grants(platform, act["id"])) == 2


async def test_one_new_user_reward_even_when_evaluated_concurrently(platform: Platform) -> None:
    import asyncio

    from activity_service.activities.models import Activity
    from activity_service.evaluation.service import Evaluation, load_facts
    from activity_service.tenants.service import tenant_context

    p1, p2 = await prizes(platform, 2)
    acts = [
        await activity(
            platform,
            {
                "kind": "basic",
                "attribute": "new_user",
                "rules": [{"id": "r", "task": "register", "prize_id": prize}],
            },
        )
        for prize in (p1, p2)
    ]
    await platform.activity.post(
        "/v1/events",
        json=event("user.registered", "u1", "2026-12-02T10:00:00+08:00"),
        headers=platform.service(),
    )
    db = platform.db("activity")

    async def evaluate(activity_id: str) -> None:
        async with db.session() as session:
            row = await session.get(Activity, __import__("uuid").UUID(activity_id))
            ev = Evaluation(
                session=session,
                tenant=await tenant_context(session, "tenant-a"),
                now=platform.clock.now(),
                referral=None,
            )
            facts = await load_facts(session, "tenant-a", "u1")
            await evaluation.evaluate_basic(
                ev, row, facts, mode="event", event_type="user.registered"
            )
            await asyncio.sleep(0.1)  # keep the transaction open while the other runs

    await asyncio.gather(*(evaluate(a["id"]) for a in acts))
    total = [g for a in acts for g in await grants(platform, a["id"])]
    assert len(total) == 1
