"""At-end activities pay one tier per user and task, ever (SPEC §1.5, §6): a late flow dated
before the end may change which tier is due, but a catch-up run after the settlement adds
no second reward; the operator sees the difference in explain."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from activity_service.evaluation import service as evaluation
from activity_service.evaluation.daily_repository import (
    DailyRunRepository,
    NewGrant,
    NewGrants,
)
from contracts import jobs
from tests.service.evaluation.steps import activity, explain, grants, money, post, prizes
from tests.service.harness import Platform


async def run_daily(platform: Platform, day: str) -> int:
    result = await evaluation.run_daily(
        platform.db("activity"), "tenant-a", date.fromisoformat(day), platform.clock, None
    )
    assert result.done
    await platform.drain()
    return result.grants


async def _at_end_tiers(platform: Platform) -> tuple[dict, dict[str, str]]:
    low, high = await prizes(platform, 2)
    created = await activity(
        platform,
        {
            "kind": "basic",
            "timing": "at_end",
            "rules": [
                {
                    "id": "t10k",
                    "task": "net_deposit",
                    "threshold": "10000",
                    "currency": "HKD",
                    "prize_id": low,
                },
                {
                    "id": "t50k",
                    "task": "net_deposit",
                    "threshold": "50000",
                    "currency": "HKD",
                    "prize_id": high,
                },
            ],
        },
    )
    return created, {"t10k": low, "t50k": high}


async def test_a_late_flow_after_the_settlement_adds_no_second_tier(platform: Platform) -> None:
    act, _ = await _at_end_tiers(platform)
    await post(platform, money("cash.deposited", "u1", "2026-12-10T10:00:00+08:00", "45000"))
    await platform.drain()
    assert await run_daily(platform, "2026-12-31") == 1  # T+1: the 10k tier
    assert [g.rule_id for g in await grants(platform, act["id"])] == ["t10k"]

    # reported after the settlement, dated before the end: the window now reaches 50k
    await post(platform, money("cash.deposited", "u1", "2026-12-30T10:00:00+08:00", "10000"))
    await platform.drain()
    assert await run_daily(platform, "2027-01-01") == 0  # the catch-up run pays nothing more
    assert await run_daily(platform, "2027-01-02") == 0
    (settled,) = await grants(platform, act["id"])
    assert (settled.rule_id, settled.settlement) == ("t10k", "net_deposit")
    records = await platform.reward.get(
        "/v1/reward-records",
        params={"activity_code": act["activity_code"]},
        headers=platform.operator(),
    )
    assert len(records.json()["items"]) == 1

    why = await explain(platform, act["id"], "u1")
    outcomes = {o["rule_id"]: o for o in why["outcomes"]}
    assert outcomes["t50k"]["outcome"] == "tier_changed_after_settlement"
    assert "settled with t10k" in outcomes["t50k"]["detail"]
    assert "55000" in outcomes["t50k"]["detail"]


async def test_the_one_tier_is_held_by_a_constraint(platform: Platform) -> None:
    """Two runs racing past the read of earlier settlements: the database keeps one."""
    act, prize_of = await _at_end_tiers(platform)

    def new_grants(rule_id: str, period: str = "end", settlement: str | None = "net_deposit"):
        key = f"{act['id']}:{rule_id}:u1:-:{period}"
        return NewGrants(
            tenant_id="tenant-a",
            activity_id=uuid.UUID(act["id"]),
            activity_code=act["activity_code"],
            new_user_reward=False,
            templates=[{"rule_id": rule_id, "prize_id": prize_of[rule_id]}],
            rows=[
                NewGrant(
                    grant_key=key,
                    user_id="u1",
                    app_id=None,
                    rule_index=0,
                    task="net_deposit",
                    achieved_at=datetime(2026, 12, 30, 2, tzinfo=UTC),
                    settlement=settlement,
                )
            ],
        )

    job = jobs.REWARD_CREATE_FROM_GRANT
    async with platform.db("activity").session() as session:
        repo = DailyRunRepository.from_session(session)
        first = await repo.insert_grants(new_grants("t10k"), "reward", job)
        second = await repo.insert_grants(new_grants("t50k"), "reward", job)
        # another task (or a real-time grant without a settlement) is not held back
        third = await repo.insert_grants(new_grants("t50k", "once", None), "reward", job)
        await session.rollback()
    assert len(first) == 1 and second == set() and len(third) == 1
