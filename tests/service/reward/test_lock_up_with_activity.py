"""SPEC §3.3 end to end inside the platform: the lock-up is settled by asking the real
activity service (its position endpoint, over HTTP) about the user's money flows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from contracts.payloads import LockUp
from tests.service.harness import Platform
from tests.service.reward.helpers import (
    coupon_prize,
    create_record,
    drain,
    grant,
    reconcile,
    record,
)

LOCK = LockUp(amount=Decimal("10000"), currency="HKD", days=30)


async def money_event(
    platform: Platform, user: str, n: int, kind: str, amount: str, at: str
) -> None:
    body: dict[str, Any] = {
        "event_id": f"evt-{user}-{n}",
        "type": kind,
        "user_id": user,
        "app_id": "broker-app",
        "occurred_at": at,
        "amount": amount,
        "currency": "HKD",
    }
    response = await platform.activity.post("/v1/events", json=body, headers=platform.service())
    assert response.status_code == 202, response.text


async def test_lock_kept_is_released_and_lock_broken_is_cancelled(platform: Platform) -> None:
    await money_event(platform, "u-keeps", 1, "cash.deposited", "20000", "2026-11-20T01:00:00Z")
    await money_event(platform, "u-spends", 1, "cash.deposited", "20000", "2026-11-20T01:00:00Z")
    await money_event(platform, "u-spends", 2, "cash.withdrawn", "15000", "2026-12-01T01:00:00Z")
    prize = await coupon_prize(platform)
    keeps = await create_record(platform, grant(prize["id"], "u-keeps", lock=LOCK))
    spends = await create_record(platform, grant(prize["id"], "u-spends", lock=LOCK))
    assert keeps and spends

    platform.clock.advance(timedelta(days=30, seconds=1))
    report = await reconcile(platform)
    assert (report.released, report.broken, report.lock_checks_deferred) == (1, 1, 0)
    await drain(platform)
    assert (await record(platform, keeps.id)).status == "issued"
    cancelled = await record(platform, spends.id)
    assert cancelled.status == "cancelled"
    assert cancelled.failure_reason and cancelled.failure_reason.startswith("lock_broken")


AT_ONCE = LockUp(amount=Decimal("10000"), currency="HKD", days=30, issue_after_lock=False)


async def test_reward_issued_at_once_is_still_checked_at_expiry(platform: Platform) -> None:
    """ "Issue after lock-up = no": the reward reaches the user at once, its lock runs from
    then, and at expiry a broken lock is flagged for the operator while the record stays
    Issued (a kept lock is recorded as held)."""
    await money_event(platform, "u-keeps", 1, "cash.deposited", "20000", "2026-11-20T01:00:00Z")
    await money_event(platform, "u-spends", 1, "cash.deposited", "20000", "2026-11-20T01:00:00Z")
    prize = await coupon_prize(platform)
    issued_at = platform.clock.now()
    keeps = await create_record(platform, grant(prize["id"], "u-keeps", lock=AT_ONCE))
    spends = await create_record(platform, grant(prize["id"], "u-spends", lock=AT_ONCE))
    assert keeps and spends
    assert (keeps.status, keeps.lock_result) == ("issued", None)
    assert keeps.lock_started_at == issued_at
    assert keeps.lock_expires_at == issued_at + timedelta(days=30)

    # Inside the lock period nothing is due, and both count as 锁仓中 and as issued.
    platform.clock.advance(timedelta(days=10))
    await money_event(platform, "u-spends", 2, "cash.withdrawn", "15000", "2026-12-01T01:00:00Z")
    assert (await reconcile(platform)).broken == 0
    stats = await platform.reward.get(
        "/v1/reward-records/stats",
        params={"activity_code": "ACT-TEST0001"},
        headers=platform.operator(),
    )
    assert stats.status_code == 200, stats.text
    assert (stats.json()["issued"], stats.json()["locked"], stats.json()["all"]) == (2, 2, 2)

    platform.clock.advance(timedelta(days=20, seconds=1))
    report = await reconcile(platform)
    assert (report.released, report.broken) == (0, 1)
    kept, broken = await record(platform, keeps.id), await record(platform, spends.id)
    assert (kept.status, kept.lock_result, kept.lock_detail) == ("issued", "held", None)
    assert (broken.status, broken.lock_result) == ("issued", "broken")
    assert broken.lock_detail and broken.lock_detail.startswith("lock_broken")
    assert broken.lock_settled_at == platform.clock.now()
    # Flagging is not a state move: no transition, no version bump, no status message.
    assert broken.version == spends.version
    # Settled once: the next pass has nothing left to ask.
    assert (await reconcile(platform)).broken == 0

    flagged = await platform.reward.get(
        "/v1/reward-records", params={"lock": "broken"}, headers=platform.operator()
    )
    assert [r["number"] for r in flagged.json()["items"]] == [spends.number]
    assert flagged.json()["items"][0]["lock_result"] == "broken"
    stats = await platform.reward.get(
        "/v1/reward-records/stats",
        params={"activity_code": "ACT-TEST0001"},
        headers=platform.operator(),
    )
    assert (stats.json()["issued"], stats.json()["locked"]) == (2, 0)


async def test_lock_of_a_reward_issued_later_runs_from_its_arrival(platform: Platform) -> None:
    """A manual record issued at once after the lock-up = no: no expiry until the operator's
    submit issues it; the lock then runs from that arrival."""
    prize = await coupon_prize(platform)
    created = await create_record(
        platform, grant(prize["id"], "u-late", lock=AT_ONCE, form="manual")
    )
    assert created is not None
    assert (created.status, created.lock_expires_at) == ("pending", None)
    platform.clock.advance(timedelta(days=40))
    assert (await reconcile(platform)).broken == 0

    submitted_at = platform.clock.now()
    response = await platform.reward.post(
        f"/v1/reward-records/{created.id}/submit", json={}, headers=platform.operator()
    )
    assert response.status_code == 200, response.text
    await drain(platform)
    issued = await record(platform, created.id)
    assert issued.status == "issued"
    assert issued.lock_started_at == submitted_at
    assert issued.lock_expires_at == submitted_at + timedelta(days=30)
    listed = await platform.reward.get(
        "/v1/reward-records", params={"lock": "running"}, headers=platform.operator()
    )
    assert [r["number"] for r in listed.json()["items"]] == [issued.number]


async def test_locked_record_keeps_its_verdict(platform: Platform) -> None:
    """The reward issued after the lock-up records the verdict it was released with."""
    await money_event(platform, "u-keeps", 1, "cash.deposited", "20000", "2026-11-20T01:00:00Z")
    prize = await coupon_prize(platform)
    locked = await create_record(platform, grant(prize["id"], "u-keeps", lock=LOCK))
    assert locked is not None and locked.status == "locked"
    assert locked.lock_expires_at == platform.clock.now() + timedelta(days=30)
    platform.clock.advance(timedelta(days=30, seconds=1))
    assert (await reconcile(platform)).released == 1
    await drain(platform)
    released = await record(platform, locked.id)
    assert (released.status, released.lock_result) == ("issued", "held")
    # Released and then issued: its lock is over, it does not start a second one.
    assert released.lock_expires_at == locked.lock_expires_at
