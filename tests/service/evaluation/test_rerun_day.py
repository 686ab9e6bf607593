"""An operator re-runs a past day after late events: only what is now earned and was not
before is granted, never twice, and the answer lists it."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.service.evaluation.steps import (
    activity,
    grants,
    money,
    post,
    prizes,
    register_invitees,
)
from tests.service.harness import Platform


async def rerun(platform: Platform, day: str, **headers: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = await platform.activity.post(
        f"/v1/daily-runs/{day}", headers=headers or platform.operator()
    )
    return response.status_code, response.json()


async def test_a_rerun_adds_what_late_events_earn_and_nothing_twice(platform: Platform) -> None:
    platform.clock.set(datetime.fromisoformat("2026-12-03T02:00:00+08:00"))
    (prize,) = await prizes(platform, 1)
    tiers = [
        {"id": t, "task": "deposit_reached", "threshold": v, "currency": "HKD", "prize_id": prize}
        for t, v in (("d10k", "10000"), ("d50k", "50000"))
    ]
    created = await activity(platform, {"kind": "basic", "timing": "real_time", "rules": tiers})
    await post(platform, money("cash.deposited", "u1", "2026-12-01T10:00:00+08:00", "20000"))

    status, first = await rerun(platform, "2026-12-01")
    assert status == 200, first
    assert [(g["user_id"], g["rule_id"]) for g in first["grants"]] == [("u1", "d10k")]

    # A deposit of that day arrives late: the re-run grants the tier it reaches, only.
    await post(platform, money("cash.deposited", "u1", "2026-12-01T20:00:00+08:00", "40000"))
    status, second = await rerun(platform, "2026-12-01")
    assert status == 200, second
    assert second["grants_made"] == 1 and second["truncated"] is False
    assert [(g["user_id"], g["rule_id"]) for g in second["grants"]] == [("u1", "d50k")]

    # Idempotent: again, nothing changes.
    status, third = await rerun(platform, "2026-12-01")
    assert (status, third["grants_made"], third["grants"]) == (200, 0, [])
    assert sorted(g.rule_id for g in await grants(platform, created["id"])) == ["d10k", "d50k"]
    await platform.drain()
    assert sorted(g.rule_id for g in await grants(platform, created["id"])) == ["d10k", "d50k"]


async def test_a_rerun_needs_a_past_day_and_write_permission(platform: Platform) -> None:
    platform.clock.set(datetime.fromisoformat("2026-12-03T02:00:00+08:00"))
    status, body = await rerun(platform, "2026-12-03")  # the run of 12-02 is the last due
    assert (status, body["code"]) == (409, "day_not_over")
    status, body = await rerun(platform, "2026-02-30")
    assert status == 422
    reader = platform.operator(permissions=["ActivityCenterRead"])
    status, body = await rerun(platform, "2026-12-01", **reader)
    assert status == 403
    status, body = await rerun(platform, "2026-12-01", **platform.user("u1"))
    assert status == 403


async def test_a_rerun_while_the_referral_service_is_down_is_a_503(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.clock.set(datetime.fromisoformat("2026-12-03T02:00:00+08:00"))
    (prize,) = await prizes(platform, 1)
    rule = {"task": "deposit_reached", "threshold": "10000", "currency": "HKD", "prize_id": prize}
    await activity(
        platform,
        {"kind": "referral", "attribute": "marketing", "reward_type": "fixed", "rules": [rule]},
    )
    await register_invitees(platform, "inv", ["a"], when="2026-12-01T10:00:00+08:00")
    # Decided by the day's run: the inviter at the deposit node is asked of the referral service.
    await post(platform, money("cash.deposited", "a", "2026-12-01T11:00:00+08:00", "20000"))
    # Nothing listens on the discard port: the inviter lookups fail fast after their retries.
    settings = platform.apps["activity"].state.settings
    monkeypatch.setattr(settings, "referral_url", "http://127.0.0.1:9")
    status, body = await rerun(platform, "2026-12-01")
    assert (status, body.get("code")) == (503, "upstream_unavailable"), (status, body)
    monkeypatch.undo()
    status, body = await rerun(platform, "2026-12-01")
    assert status == 200, body
