"""The daily run as the worker drives it: the cron tick picks the tenant's day by its time
zone and run time, the run job grants, and a finished day is not started again. Also the
daily run of a referral activity with a cumulative task."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from activity_service.evaluation import tasks
from activity_service.evaluation.repository import EvaluationRepository
from service_kit.queue import queue_name
from tests.service.evaluation.steps import (
    activity,
    event,
    grants,
    invite_code,
    money,
    post,
    prizes,
)
from tests.service.harness import Platform


def hk(local: str) -> datetime:
    """A Hong Kong wall-clock time as UTC (the platform clock stays in UTC for other tests)."""
    return datetime.fromisoformat(local + "+08:00").astimezone(UTC)


def _ctx(platform: Platform) -> dict[str, Any]:
    return {
        "db": platform.db("activity"),
        "clock": platform.clock,
        "clocks": platform.job_clocks("activity"),
        "redis": platform.apps["activity"].state.arq,
        "settings": platform.settings["activity"],
        "http": platform.apps["activity"].state.http,
    }


async def _queued(platform: Platform) -> int:
    prefix = platform.settings["activity"].queue_prefix
    return int(await platform.apps["activity"].state.arq.zcard(queue_name(prefix, "activity")))


async def test_cron_tick_runs_the_tenants_previous_day_once(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform,
        {
            "kind": "basic",
            "rules": [
                {
                    "id": "dr",
                    "task": "deposit_reached",
                    "threshold": "5000",
                    "currency": "HKD",
                    "prize_id": prize,
                }
            ],
        },
    )
    await post(platform, money("cash.deposited", "u1", "2026-12-02T22:00:00+08:00", "6000"))
    await platform.drain()
    # 00:20 in Hong Kong on Dec 3: before the run time (00:30), so Dec 1 is the day owed
    platform.clock.set(hk("2026-12-03T00:20:00"))
    assert await tasks.daily_tick(_ctx(platform)) == 1
    await platform.drain()
    assert await grants(platform, act["id"]) == []
    # 00:40: Dec 2 is owed now
    platform.clock.set(hk("2026-12-03T00:40:00"))
    assert await tasks.daily_tick(_ctx(platform)) == 1
    await platform.drain()
    assert [g.user_id for g in await grants(platform, act["id"])] == ["u1"]
    async with platform.db("activity").session() as session:
        run = await EvaluationRepository.from_session(session).get_run(
            "tenant-a", date(2026, 12, 2)
        )
        assert run is not None and run.status == "done" and run.grants == 1
    # a later tick the same day finds the day done and starts nothing
    platform.clock.set(hk("2026-12-03T09:00:00"))
    assert await tasks.daily_tick(_ctx(platform)) == 0
    assert await _queued(platform) == 0


async def test_daily_run_rewards_inviters_for_cumulative_tasks(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [
                {
                    "id": "nti",
                    "task": "net_transfer_in",
                    "threshold": "10000",
                    "currency": "HKD",
                    "prize_id": prize,
                }
            ],
        },
    )
    code = await invite_code(platform, "inv")
    await post(
        platform,
        event("user.registered", "a", "2026-12-02T08:00:00+08:00", invite_code=code),
        money("cash.deposited", "a", "2026-12-02T09:00:00+08:00", "4000"),
        money("stock.transferred_in", "a", "2026-12-02T10:00:00+08:00", "7000"),
        money("cash.deposited", "b", "2026-12-02T09:00:00+08:00", "40000"),  # no inviter
    )
    await platform.drain()
    assert await grants(platform, act["id"]) == []  # cumulative: the daily run decides
    platform.clock.set(hk("2026-12-03T01:00:00"))
    await tasks.daily_tick(_ctx(platform))
    await platform.drain()
    rows = await grants(platform, act["id"])
    assert [(g.user_id, g.counterpart_id, g.rule_id) for g in rows] == [("inv", "a", "nti")]
