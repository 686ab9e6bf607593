"""SPEC §3.2: records from grants, every operator move allowed and refused, history and the
status messages back to activity_service."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts.payloads import LockUp
from reward_service.records.models import RewardRecord
from tests.service.harness import Platform
from tests.service.reward.helpers import (
    count,
    coupon_prize,
    create_record,
    drain,
    enqueue_grant,
    grant,
    physical_prize,
    record,
    status_messages,
    transitions,
)

LOCK = LockUp(amount=Decimal("10000"), currency="HKD", days=30)


async def record_in(platform: Platform, status: str) -> str:
    """A fresh record in ``status``, reached through the real paths."""
    if status == "failed":
        prize = await physical_prize(platform, stock=0)
        created = await create_record(platform, grant(prize["id"]))
        await drain(platform)
    else:
        prize = await coupon_prize(platform)
        form = "automatic" if status == "issued" else "manual"
        created = await create_record(
            platform, grant(prize["id"], form=form, lock=LOCK if status == "locked" else None)
        )
        assert created is not None
        if status == "issuing":
            await move(platform, created.id, "submit", expect=200)
        elif status == "cancelled":
            await move(platform, created.id, "cancel", expect=200)
        elif status == "issued":
            await drain(platform)
    assert created is not None
    assert (await record(platform, created.id)).status == status
    return str(created.id)


async def move(
    platform: Platform, record_id: Any, action: str, expect: int, **kwargs: Any
) -> dict[str, Any]:
    response = await platform.reward.post(
        f"/v1/reward-records/{record_id}/{action}", headers=platform.operator(), **kwargs
    )
    assert response.status_code == expect, response.text
    return response.json()


ALLOWED = [
    ("pending", "submit", "issuing"),
    ("pending", "cancel", "cancelled"),
    ("locked", "cancel", "cancelled"),
    ("failed", "cancel", "cancelled"),
    ("failed", "resubmit", "issuing"),
]
STATUSES = ["pending", "locked", "issuing", "issued", "failed", "cancelled"]
REFUSED = [
    (status, action)
    for status in STATUSES
    for action in ("submit", "cancel", "resubmit")
    if (status, action) not in {(s, a) for s, a, _ in ALLOWED}
]


@pytest.mark.parametrize(("status", "action", "target"), ALLOWED)
async def test_operator_moves_that_exist(
    platform: Platform, status: str, action: str, target: str
) -> None:
    record_id = await record_in(platform, status)
    before = await transitions(platform, record_id)
    body = await move(platform, record_id, action, expect=200, json={"reason": "ops check"})
    assert body["status"] == target
    after = await transitions(platform, record_id)
    assert after == [*before, (status, target, action)]
    detail = await platform.reward.get(
        f"/v1/reward-records/{record_id}", headers=platform.operator()
    )
    last = detail.json()["transitions"][-1]
    assert last["actor"] == "operator:ops-1" and last["reason"] == "ops check"
    assert (await status_messages(platform, body["number"]))[-1] == target


@pytest.mark.parametrize(("status", "action"), REFUSED)
async def test_every_other_move_is_refused_and_changes_nothing(
    platform: Platform, status: str, action: str
) -> None:
    record_id = await record_in(platform, status)
    before: RewardRecord = await record(platform, record_id)
    history = await transitions(platform, record_id)
    problem = await move(platform, record_id, action, expect=409)
    assert problem["code"] == "invalid_transition"
    assert problem["current_status"] == status and problem["action"] == action
    after = await record(platform, record_id)
    assert (after.status, after.version, after.updated_at) == (
        before.status,
        before.version,
        before.updated_at,
    )
    assert await transitions(platform, record_id) == history


async def test_resubmitted_failure_is_issued_once_stock_is_back(platform: Platform) -> None:
    prize = await physical_prize(platform, stock=0)
    created = await create_record(platform, grant(prize["id"]))
    assert created is not None
    await drain(platform)
    failed = await record(platform, created.id)
    assert failed.status == "failed" and failed.failure_reason == "out_of_stock"
    patched = await platform.reward.patch(
        f"/v1/prizes/{prize['id']}",
        json={"stock_delta": 1},
        headers=platform.operator(),
    )
    assert patched.json()["stock"] == 1
    await move(platform, created.id, "resubmit", expect=200)
    await drain(platform)
    issued = await record(platform, created.id)
    assert issued.status == "issued" and issued.failure_reason is None
    assert [t[1] for t in await transitions(platform, created.id)] == [
        "pending",
        "issuing",
        "failed",
        "issuing",
        "issued",
    ]


async def test_idempotency_key_replays_a_move(platform: Platform) -> None:
    record_id = await record_in(platform, "pending")
    key = {"Idempotency-Key": "submit-1"}
    first = await platform.reward.post(
        f"/v1/reward-records/{record_id}/submit", headers={**platform.operator(), **key}
    )
    again = await platform.reward.post(
        f"/v1/reward-records/{record_id}/submit", headers={**platform.operator(), **key}
    )
    assert first.status_code == again.status_code == 200
    assert again.json()["status"] == "issuing"
    assert len(await transitions(platform, record_id)) == 2
    other = await platform.reward.post(
        f"/v1/reward-records/{record_id}/cancel", headers={**platform.operator(), **key}
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    without = await platform.reward.post(
        f"/v1/reward-records/{record_id}/submit", headers=platform.operator()
    )
    assert without.status_code == 409 and without.json()["code"] == "invalid_transition"


async def test_grant_creates_one_record_with_every_field(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    g = grant(prize["id"], "u-7", key="g-fixed-1", form="manual")
    await enqueue_grant(platform, g)
    await drain(platform)
    # Redelivered by a second relay after arq forgot the job id: still one record.
    redis = platform.apps["reward"].state.arq
    prefix = platform.settings["reward"].queue_prefix
    await redis.delete(*[k async for k in redis.scan_iter(f"arq:*:{prefix}:g-fixed-1")])
    await enqueue_grant(platform, g)
    await drain(platform)
    assert await count(platform, RewardRecord) == 1
    listed = await platform.reward.get(
        "/v1/reward-records", params={"user_id": "u-7"}, headers=platform.operator()
    )
    (item,) = listed.json()["items"]
    assert item["number"].startswith("RR-20261123-")
    assert item["status"] == "pending" and item["issuance_form"] == "manual"
    assert item["activity_code"] == "ACT-TEST0001" and item["activity_name"] == "Sign-up gift"
    assert item["counterpart_id"] == "u-inviter" and item["task"] == "register"
    assert item["prize_name"] == "30-day market data" and item["prize_type"] == "coupon"
    assert item["achieved_at"].startswith("2026-11-23T01:30:00")


async def test_automatic_record_is_issued_and_lock_up_waits(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    auto = await create_record(platform, grant(prize["id"]))
    locked = await create_record(platform, grant(prize["id"], lock=LOCK))
    shown_only = await create_record(
        platform,
        grant(
            prize["id"],
            lock=LockUp(amount=Decimal("500"), currency="HKD", days=7, issue_after_lock=False),
        ),
    )
    assert auto and locked and shown_only
    # Coupons are fulfilled in the transaction that creates an automatic record.
    assert auto.status == "issued" and locked.status == "locked"
    assert shown_only.status == "issued" and shown_only.lock_issue_after is False
    await drain(platform)
    assert (await record(platform, auto.id)).status == "issued"
    assert (await record(platform, shown_only.id)).status == "issued"
    held = await record(platform, locked.id)
    assert held.status == "locked" and held.lock_amount == Decimal("10000")
    assert held.lock_started_at == platform.clock.now()
    assert held.lock_expires_at == platform.clock.now() + timedelta(days=30)


async def test_records_of_another_tenant_are_not_found(platform: Platform) -> None:
    record_id = await record_in(platform, "pending")
    for path in (f"/v1/reward-records/{record_id}", f"/v1/reward-records/{record_id}/submit"):
        call = platform.reward.get if path.endswith(record_id) else platform.reward.post
        response = await call(path, headers=platform.operator("tenant-b"))
        assert response.status_code == 404 and response.json()["code"] == "record_not_found"


async def test_read_only_operator_cannot_move(platform: Platform) -> None:
    record_id = await record_in(platform, "pending")
    response = await platform.reward.post(
        f"/v1/reward-records/{record_id}/submit",
        headers=platform.operator(permissions=["RightsSystemRead"]),
    )
    assert response.status_code == 403
    readable = await platform.reward.get(
        f"/v1/reward-records/{record_id}",
        headers=platform.operator(permissions=["RightsSystemRead"]),
    )
    assert readable.status_code == 200
