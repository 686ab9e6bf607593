"""Explain is current (SPEC §5): an outcome a later fact made stale is marked superseded,
the download task says when the device was seen before, and flows waiting for the daily run
say so and when the run is due — not "no qualifying event"."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from activity_service.evaluation import service as evaluation
from tests.service.evaluation.steps import (
    activity,
    event,
    explain,
    invite_code,
    money,
    post,
    prizes,
)
from tests.service.harness import Platform

HK = ZoneInfo("Asia/Hong_Kong")


async def run_daily(platform: Platform, day: str) -> None:
    result = await evaluation.run_daily(
        platform.db("activity"), "tenant-a", date.fromisoformat(day), platform.clock, None
    )
    assert result.done
    await platform.drain()


async def test_an_invitee_outcome_is_superseded_once_the_task_completes(
    platform: Platform,
) -> None:
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [{"id": "open", "task": "open_account", "prize_id": prize}],
        },
    )
    code = await invite_code(platform, "ivy")
    await post(
        platform, event("user.registered", "ian", "2026-12-02T10:00:00+08:00", invite_code=code)
    )
    await platform.drain()  # bound: the binding re-decides ian's rules, the task is not done
    before = await explain(platform, act["id"], "ian")
    assert [(o["outcome"], o["current"]) for o in before["outcomes"]] == [
        ("task_not_completed", True)
    ]

    await post(platform, event("account.opened", "ian", "2026-12-03T10:00:00+08:00"))
    await platform.drain()
    after = await explain(platform, act["id"], "ian")
    (stale,) = after["outcomes"]
    assert stale["outcome"] == "task_not_completed" and stale["current"] is False
    assert stale["superseded_by"].startswith("granted later: open to ivy")
    assert [(g["user_id"], g["rule_id"]) for g in after["credited"]] == [("ivy", "open")]
    assert "task_not_completed" not in after["status_hint"]


async def test_an_outcome_before_a_queued_event_is_not_current(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform,
        {"kind": "basic", "rules": [{"id": "open", "task": "open_account", "prize_id": prize}]},
    )
    await post(platform, event("account.opened", "olly", "2026-11-20T10:00:00+08:00"))
    await platform.drain()
    assert (await explain(platform, act["id"], "olly"))["outcomes"][0]["outcome"] == (
        "outside_window"
    )
    # stored, its evaluation not run yet
    await post(platform, event("account.opened", "olly", "2026-12-05T10:00:00+08:00"))
    (queued,) = (await explain(platform, act["id"], "olly"))["outcomes"]
    assert queued["current"] is False
    assert "account.opened" in queued["superseded_by"] and "queued" in queued["superseded_by"]


async def test_download_says_the_device_was_seen_before(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform,
        {"kind": "basic", "rules": [{"id": "dl", "task": "download", "prize_id": prize}]},
    )
    await post(
        platform,
        event("user.registered", "first", "2026-12-02T09:00:00+08:00"),
        event("app.login", "first", "2026-12-02T09:05:00+08:00", device_id="phone-1"),
    )
    await platform.drain()
    await post(
        platform,
        event("user.registered", "second", "2026-12-02T10:00:00+08:00"),
        event("app.login", "second", "2026-12-02T10:05:00+08:00", device_id="phone-1"),
    )
    await platform.drain()
    assert len((await explain(platform, act["id"], "first"))["grants"]) == 1
    why = await explain(platform, act["id"], "second")
    assert [o["outcome"] for o in why["outcomes"]] == ["device_seen_before"]
    assert why["status_hint"] == "no grant: device_seen_before"
    # registered, never logged in: simply not completed
    await post(platform, event("user.registered", "third", "2026-12-02T11:00:00+08:00"))
    await platform.drain()
    third = await explain(platform, act["id"], "third")
    assert [o["outcome"] for o in third["outcomes"]] == ["task_not_completed"]


async def test_deposits_waiting_for_the_daily_run_say_when_it_is_due(platform: Platform) -> None:
    low, high = await prizes(platform, 2)
    rules = [
        {"id": "d10k", "task": "deposit_reached", "threshold": "10000", "currency": "HKD"},
        {"id": "d50k", "task": "deposit_reached", "threshold": "50000", "currency": "HKD"},
    ]
    act = await activity(
        platform,
        {
            "kind": "basic",
            "rules": [{**r, "prize_id": p} for r, p in zip(rules, (low, high), strict=True)],
        },
    )
    platform.clock.set(datetime(2026, 12, 2, 12, 0, tzinfo=HK))
    nobody = await explain(platform, act["id"], "dora")
    assert "no qualifying event" in nobody["status_hint"]

    await post(platform, money("cash.deposited", "dora", "2026-12-02T10:00:00+08:00", "20000"))
    await platform.drain()
    why = await explain(platform, act["id"], "dora")
    assert {o["rule_id"]: o["outcome"] for o in why["outcomes"]} == {
        "d10k": "awaiting_daily_run",
        "d50k": "awaiting_daily_run",
    }
    due = datetime.fromisoformat(why["outcomes"][0]["due_at"])
    assert due == datetime(2026, 12, 3, 0, 30, tzinfo=HK)  # the run of Dec 2, after its cut-off
    assert "2026-12-02" in why["outcomes"][0]["detail"]
    assert "waiting for the daily run" in why["status_hint"]
    assert "no qualifying event" not in why["status_hint"]

    await run_daily(platform, "2026-12-02")
    decided = await explain(platform, act["id"], "dora")
    assert [g["rule_id"] for g in decided["grants"]] == ["d10k"]
    assert [(o["rule_id"], o["outcome"], o["current"]) for o in decided["outcomes"]] == [
        ("d10k", "granted", True),
        ("d50k", "task_not_completed", True),
    ]
    # a flow dated Dec 2 reported after that run: the next run (Dec 3's) decides it
    await post(platform, money("cash.deposited", "dora", "2026-12-02T18:00:00+08:00", "40000"))
    await platform.drain()
    late = await explain(platform, act["id"], "dora")
    waiting = [o for o in late["outcomes"] if o["outcome"] == "awaiting_daily_run"]
    assert [o["rule_id"] for o in waiting] == ["d50k"]
    assert datetime.fromisoformat(waiting[0]["due_at"]) == datetime(2026, 12, 4, 0, 30, tzinfo=HK)
    stale = next(o for o in late["outcomes"] if o["outcome"] == "task_not_completed")
    assert stale["current"] is False


async def test_at_end_flows_wait_for_the_t_plus_1_settlement(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform,
        {
            "kind": "basic",
            "timing": "at_end",
            "rules": [
                {
                    "id": "n10k",
                    "task": "net_deposit",
                    "threshold": "10000",
                    "currency": "HKD",
                    "prize_id": prize,
                }
            ],
        },
    )
    platform.clock.set(datetime(2026, 12, 10, 12, 0, tzinfo=HK))
    await post(platform, money("cash.deposited", "sam", "2026-12-05T10:00:00+08:00", "20000"))
    await platform.drain()
    (waiting,) = (await explain(platform, act["id"], "sam"))["outcomes"]
    assert waiting["outcome"] == "awaiting_daily_run"
    assert "T+1 settlement of 2026-12-31" in waiting["detail"]
    assert datetime.fromisoformat(waiting["due_at"]) == datetime(2027, 1, 1, 0, 30, tzinfo=HK)
