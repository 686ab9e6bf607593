"""Sandbox tenants: their own clock, advanced over HTTP, with everything due on the way done
in time order across the three services (SPEC §1.5, §1.8, §1.9, §3.3 in seconds)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from activity_service.sandbox import service as sandbox_service
from tests.service.harness import Platform
from tests.service.sandbox.steps import (
    activity,
    advance,
    advanced,
    deposit,
    post_event,
    prize,
    records,
    rules_rewarded,
    sandbox,
    tier,
)

T = "sbx-clock"
DEC = {"starts_at": "2026-12-01T00:00:00+08:00", "ends_at": "2027-01-01T00:00:00+08:00"}


async def test_a_sandbox_clock_stands_still_until_advanced(platform: Platform) -> None:
    created = await sandbox(platform, T, "2026-12-01T00:00:00+08:00")
    assert created["now"] == "2026-11-30T16:00:00Z"
    assert created["status"] == "idle"
    again = await platform.activity.post(
        "/v1/sandbox", json={"starts_at": "2027-01-01T00:00:00Z"}, headers=platform.operator(T)
    )
    assert again.status_code == 200 and again.json()["now"] == created["now"]
    # Every time-driven read follows it: an activity of December is not yet over for the
    # sandbox although the platform's clock says 2026-11-23.
    clock = await advanced(platform, T, "2026-12-05T12:00:00+08:00")
    assert clock["now"] == "2026-12-05T04:00:00Z"
    read = await platform.activity.get("/v1/sandbox/clock", headers=platform.operator(T))
    assert read.status_code == 200 and read.json()["now"] == clock["now"]
    # Idempotent: the same target again changes nothing; never backwards.
    assert (await advance(platform, T, "2026-12-05T12:00:00+08:00")).status_code == 200
    back = await advance(platform, T, "2026-12-01T00:00:00+08:00")
    assert back.status_code == 409 and back.json()["code"] == "clock_backwards"


async def test_only_a_new_tenant_of_a_sandbox_deployment_becomes_a_sandbox(
    platform: Platform,
) -> None:
    # A tenant with data (here: a prize in the reward service) is refused.
    await prize(platform, "prod-tenant")
    refused = await platform.activity.post(
        "/v1/sandbox", json={}, headers=platform.operator("prod-tenant")
    )
    assert refused.status_code == 409 and refused.json()["code"] == "tenant_not_empty"
    # …and keeps the system clock: it has no sandbox clock to read or advance.
    for response in (
        await platform.activity.get("/v1/sandbox/clock", headers=platform.operator("prod-tenant")),
        await advance(platform, "prod-tenant", "2030-01-01T00:00:00Z"),
    ):
        assert response.status_code == 404 and response.json()["code"] == "not_sandbox"
    # Only operators with write permission create or advance; readers read.
    reader = platform.operator(T, permissions=["ActivityCenterRead"])
    assert (await platform.activity.post("/v1/sandbox", json={}, headers=reader)).status_code == 403
    user = platform.user("u1", T)
    assert (await platform.activity.get("/v1/sandbox/clock", headers=user)).status_code == 403
    # Bad input is a 422, never a 500.
    await sandbox(platform, T, "2026-12-01T00:00:00+08:00")
    naive = await platform.activity.post(
        "/v1/sandbox/clock", json={"to": "2026-12-02T00:00:00"}, headers=platform.operator(T)
    )
    assert naive.status_code == 422
    far = await advance(platform, T, "2029-12-02T00:00:00Z")
    assert far.status_code == 422 and far.json()["code"] == "advance_too_far"
    # The other services refuse a clock pushed for a tenant that is not a sandbox.
    pushed = await platform.reward.put(
        "/v1/sandbox/clock",
        json={"now": "2030-01-01T00:00:00Z"},
        headers=platform.service("prod-tenant"),
    )
    assert pushed.status_code == 404


async def test_a_sandbox_deployment_setting_is_needed(platform: Platform) -> None:
    settings = platform.apps["activity"].state.settings
    settings.sandbox_enabled = False
    try:
        response = await platform.activity.post(
            "/v1/sandbox", json={}, headers=platform.operator(T)
        )
    finally:
        settings.sandbox_enabled = True
    assert response.status_code == 404 and response.json()["code"] == "sandbox_disabled"


async def test_real_time_tiers_over_four_days(platform: Platform) -> None:
    await sandbox(platform, T, "2026-12-01T09:00:00+08:00")
    p = await prize(platform, T)
    tiers = [tier("d10k", "10000", p), tier("d50k", "50000", p), tier("d100k", "100000", p)]
    await activity(platform, T, {"kind": "basic", **DEC, "timing": "real_time", "rules": tiers})

    await deposit(platform, T, "u1", "2026-12-01T10:00:00+08:00", "12000")
    await advanced(platform, T, "2026-12-02T09:00:00+08:00")  # day 1 run at 00:30
    assert await rules_rewarded(platform, T, "u1") == {"d10k": "issued"}

    await deposit(platform, T, "u1", "2026-12-02T10:00:00+08:00", "40000")
    await advanced(platform, T, "2026-12-03T09:00:00+08:00")
    assert await rules_rewarded(platform, T, "u1") == {"d10k": "issued", "d50k": "issued"}

    await advanced(platform, T, "2026-12-04T09:00:00+08:00")  # a quiet day: nothing new
    assert len(await records(platform, T, "u1")) == 2

    await deposit(platform, T, "u1", "2026-12-04T10:00:00+08:00", "60000")
    await advanced(platform, T, "2026-12-05T09:00:00+08:00")
    assert await rules_rewarded(platform, T, "u1") == {
        "d10k": "issued",
        "d50k": "issued",
        "d100k": "issued",
    }


async def test_an_at_end_activity_is_settled_at_t_plus_1_with_its_highest_tier(
    platform: Platform,
) -> None:
    await sandbox(platform, T, "2026-12-01T09:00:00+08:00")
    p = await prize(platform, T)
    window = {"starts_at": "2026-12-01T00:00:00+08:00", "ends_at": "2026-12-03T00:00:00+08:00"}
    tiers = [tier("d10k", "10000", p), tier("d50k", "50000", p)]
    await activity(platform, T, {"kind": "basic", **window, "timing": "at_end", "rules": tiers})
    await deposit(platform, T, "u1", "2026-12-01T10:00:00+08:00", "20000")
    await advanced(platform, T, "2026-12-02T09:00:00+08:00")
    await deposit(platform, T, "u1", "2026-12-02T10:00:00+08:00", "40000")
    # The window has ended, but settlement waits for the T+1 run (00:30 local).
    await advanced(platform, T, "2026-12-03T00:20:00+08:00")
    assert await records(platform, T, "u1") == []
    await advanced(platform, T, "2026-12-03T00:31:00+08:00")
    assert await rules_rewarded(platform, T, "u1") == {"d50k": "issued"}
    await advanced(platform, T, "2026-12-10T00:00:00+08:00")
    assert len(await records(platform, T, "u1")) == 1


async def test_a_lock_up_kept_is_issued_and_a_broken_one_cancelled_at_expiry(
    platform: Platform,
) -> None:
    await sandbox(platform, T, "2026-12-01T09:00:00+08:00")
    p = await prize(platform, T)
    lock = {"lock_up": {"amount": "10000", "currency": "HKD", "days": 30}}
    rules = [tier("d10k", "10000", p, **lock)]
    await activity(platform, T, {"kind": "basic", **DEC, "timing": "real_time", "rules": rules})
    for user in ("keeps", "spends"):
        await deposit(platform, T, user, "2026-12-01T10:00:00+08:00", "20000")
    await advanced(platform, T, "2026-12-02T09:00:00+08:00")
    locked = (await records(platform, T, "keeps"))[0]
    assert locked["status"] == "locked"
    # The lock-up started when the reward arrived, on the sandbox clock: the day-1 run.
    assert locked["lock_expires_at"] == "2026-12-31T16:30:00Z"

    await advanced(platform, T, "2026-12-10T09:00:00+08:00")
    await post_event(
        platform,
        T,
        "cash.withdrawn",
        "spends",
        "2026-12-10T10:00:00+08:00",
        amount="15000",
        currency="HKD",
    )
    await advanced(platform, T, "2026-12-31T23:00:00+08:00")  # not yet expired
    assert await rules_rewarded(platform, T, "keeps") == {"d10k": "locked"}

    await advanced(platform, T, "2027-01-02T00:00:00+08:00")
    assert await rules_rewarded(platform, T, "keeps") == {"d10k": "issued"}
    (cancelled,) = await records(platform, T, "spends")
    assert cancelled["status"] == "cancelled"
    assert cancelled["failure_reason"].startswith("lock_broken")


async def test_a_team_still_forming_fails_when_its_activity_ends(platform: Platform) -> None:
    await sandbox(platform, T, "2026-12-01T09:00:00+08:00")
    p = await prize(platform, T)
    window = {"starts_at": "2026-12-01T00:00:00+08:00", "ends_at": "2026-12-02T00:00:00+08:00"}
    team_activity = await activity(
        platform,
        T,
        {
            "kind": "team",
            **window,
            "form": "assist",
            "helpers_needed": 2,
            "initiation_limit": None,
            "assist_limit": None,
            "helper_rewards": [],
            "initiator_prize_id": p,
            "issuance_form": "automatic",
        },
    )
    started = await platform.activity.post(
        f"/v1/activities/{team_activity['id']}/teams",
        json={"nickname": "Ann"},
        headers=platform.user("ann", T),
    )
    assert started.status_code == 201, started.text
    team = started.json()
    helped = await platform.activity.post(
        f"/v1/teams/{team['id']}/assists", headers=platform.user("bob", T)
    )
    assert helped.status_code in (200, 201), helped.text

    async def status() -> str:
        read = await platform.activity.get(f"/v1/teams/{team['id']}", headers=platform.operator(T))
        assert read.status_code == 200, read.text
        return str(read.json()["status"])

    assert await status() == "forming"
    await advanced(platform, T, "2026-12-02T00:00:01+08:00")
    assert await status() == "failed"
    late = await platform.activity.post(
        f"/v1/teams/{team['id']}/assists", headers=platform.user("cat", T)
    )
    assert late.status_code >= 400


async def test_a_segment_member_counts_only_after_the_next_refresh(platform: Platform) -> None:
    await sandbox(platform, T, "2026-12-01T10:01:00+08:00")
    p = await prize(platform, T)
    segment = await platform.activity.post(
        "/v1/segments", json={"name": "VIP"}, headers=platform.operator(T)
    )
    assert segment.status_code == 201, segment.text
    await activity(
        platform,
        T,
        {
            "kind": "basic",
            **DEC,
            "timing": "real_time",
            "segment_id": segment.json()["id"],
            "segment_refresh": "5m",
            "rules": [{"id": "reg", "task": "register", "prize_id": p}],
        },
    )
    await advanced(platform, T, "2026-12-01T10:02:00+08:00")
    uploaded = await platform.activity.put(
        f"/v1/segments/{segment.json()['id']}/members",
        json=["early", "late"],
        headers=platform.operator(T),
    )
    assert uploaded.status_code == 200, uploaded.text
    # Before the 10:05 refresh the snapshot does not hold them yet.
    await advanced(platform, T, "2026-12-01T10:03:00+08:00")
    await post_event(platform, T, "user.registered", "early", "2026-12-01T10:03:00+08:00")
    await advanced(platform, T, "2026-12-01T10:06:00+08:00")
    await post_event(platform, T, "user.registered", "late", "2026-12-01T10:06:00+08:00")
    await advanced(platform, T, "2026-12-01T10:07:00+08:00")
    assert await records(platform, T, "early") == []
    assert await rules_rewarded(platform, T, "late") == {"reg": "issued"}


def _times_called(monkeypatch: pytest.MonkeyPatch, name: str) -> list[datetime]:
    """The ``now`` of each call of ``sandbox_service.<name>(sandbox, tenant, now, …)``."""
    seen: list[datetime] = []
    original = getattr(sandbox_service, name)

    async def counted(sandbox: Any, tenant: Any, now: datetime, *rest: Any) -> Any:
        seen.append(now)
        return await original(sandbox, tenant, now, *rest)

    monkeypatch.setattr(sandbox_service, name, counted)
    return seen


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The times an advance stopped at, in order (each stop does what is due then)."""
    return _times_called(monkeypatch, "_settle")


async def test_thirty_quiet_days_stop_only_at_each_daily_run(
    platform: Platform, steps: list[datetime]
) -> None:
    await sandbox(platform, T, "2026-12-01T09:00:00+08:00")
    await advanced(platform, T, "2026-12-31T09:00:00+08:00")
    # the start, the 30 daily runs (00:30 local, 16:30 UTC) and the target: in time order
    assert len(steps) == 32
    assert steps == sorted(set(steps))
    assert all((s.hour, s.minute) == (16, 30) for s in steps[1:-1])
    steps.clear()
    await advanced(platform, T, "2026-12-31T09:00:00+08:00")  # nothing left to do
    assert len(steps) == 1


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The steps that waited for queued work (calm looks after the workers' jobs)."""
    return _times_called(monkeypatch, "_quiet")


async def test_only_a_step_that_granted_or_settled_waits_for_the_queues(
    platform: Platform, steps: list[datetime], waits: list[datetime]
) -> None:
    await sandbox(platform, T, "2026-12-01T09:00:00+08:00")
    p = await prize(platform, T)
    lock = {"lock_up": {"amount": "10000", "currency": "HKD", "days": 2}}
    rules = [tier("d10k", "10000", p, **lock)]
    await activity(platform, T, {"kind": "basic", **DEC, "timing": "real_time", "rules": rules})
    await deposit(platform, T, "u1", "2026-12-01T10:00:00+08:00", "12000")
    await advanced(platform, T, "2026-12-06T09:00:00+08:00")
    # the start (the deposit's own evaluation by the workers was owed), the grant made at
    # the day-1 run (Dec 2, 00:30 local) and the lock-up settled two days later: only those
    # steps waited; the quiet days looked once and moved on
    assert [w.isoformat() for w in waits] == [
        "2026-12-01T01:00:00+00:00",
        "2026-12-01T16:30:00+00:00",
        "2026-12-03T16:30:00+00:00",
    ]
    assert len(steps) == 7  # the start, five daily runs, the target
    (record,) = await records(platform, T, "u1")
    assert record["status"] == "issued"
    assert record["lock_settled_at"] == "2026-12-03T16:30:00Z"


async def test_a_step_waits_for_work_it_did_not_cause(
    platform: Platform, waits: list[datetime]
) -> None:
    # An event evaluated by the workers (not by any daily run) is owed at the first stop:
    # the quiet step's one look sees it and waits for it.
    await sandbox(platform, T, "2026-12-01T09:00:00+08:00")
    p = await prize(platform, T)
    rules = [{"id": "reg", "task": "register", "prize_id": p}]
    await activity(platform, T, {"kind": "basic", **DEC, "timing": "real_time", "rules": rules})
    await post_event(platform, T, "user.registered", "u1", "2026-12-01T09:00:00+08:00")
    await advanced(platform, T, "2026-12-01T09:00:00+08:00")
    assert len(waits) == 1
    assert await rules_rewarded(platform, T, "u1") == {"reg": "issued"}


async def test_lock_ups_falling_due_together_past_one_pass_all_settle_at_their_expiry(
    platform: Platform, steps: list[datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    # one settling pass takes 2 lock-ups: the other 3 due at the same time must not wait
    # for a later step
    monkeypatch.setattr(platform.settings["reward"], "reconcile_batch_size", 2)
    await sandbox(platform, T, "2026-12-01T09:00:00+08:00")
    p = await prize(platform, T)
    lock = {"lock_up": {"amount": "10000", "currency": "HKD", "days": 3}}
    rules = [tier("d10k", "10000", p, **lock)]
    await activity(platform, T, {"kind": "basic", **DEC, "timing": "real_time", "rules": rules})
    users = [f"u{n}" for n in range(5)]
    for user in users:
        await deposit(platform, T, user, "2026-12-01T10:00:00+08:00", "20000")
    await advanced(platform, T, "2026-12-02T09:00:00+08:00")
    expiry = (await records(platform, T, "u0"))[0]["lock_expires_at"]
    await post_event(
        platform,
        T,
        "cash.withdrawn",
        "u4",
        "2026-12-03T10:00:00+08:00",
        amount="15000",
        currency="HKD",
    )
    await advanced(platform, T, "2026-12-10T09:00:00+08:00")
    for user in users:
        (record,) = await records(platform, T, user)
        assert record["lock_settled_at"] == expiry
        assert record["status"] == ("cancelled" if user == "u4" else "issued")
        if user != "u4":
            assert record["issued_at"] == expiry  # issued at once when released
    assert expiry in [s.isoformat().replace("+00:00", "Z") for s in steps]
