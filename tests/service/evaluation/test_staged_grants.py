"""Grants without limits decided in a delivery are written together before it commits, and
announced to reward_service in bundles (``evaluation.service.stage_grant``); a key decided
twice in a delivery, or granted before, is granted once and announced once. The ledger
reads a bundle of record status changes as the changes it carries."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.db import OutboxMessage
from activity_service.evaluation.daily_repository import GRANTS_PER_MESSAGE
from contracts import jobs
from contracts.payloads import grants_of_message
from service_kit.outbox.bundles import bundle
from service_kit.worker import ItemsFailed, message_job
from tests.service.evaluation.steps import activity, event, explain, grants, post, prizes
from tests.service.harness import Platform

WHEN = "2026-12-02T10:00:00+08:00"


async def _reward_messages(platform: Platform) -> list[list[dict[str, Any]]]:
    async with platform.db("activity").session() as session:
        payloads = await session.scalars(
            select(OutboxMessage.payload)
            .where(OutboxMessage.job_name == jobs.REWARD_CREATE_FROM_GRANT)
            .order_by(OutboxMessage.created_at)
        )
        return [grants_of_message(p) for p in payloads.all()]


async def _register_activity(platform: Platform) -> dict[str, Any]:
    (prize,) = await prizes(platform, 1)
    return await activity(
        platform, {"kind": "basic", "rules": [{"id": "reg", "task": "register", "prize_id": prize}]}
    )


async def test_a_deliverys_grants_are_announced_in_bundles_and_all_become_issued_records(
    platform: Platform,
) -> None:
    act = await _register_activity(platform)
    count = GRANTS_PER_MESSAGE + 5
    await post(platform, *[event("user.registered", f"u-{i}", WHEN) for i in range(count)])
    await platform.relay()
    await platform.run_queued_jobs()  # the evaluations: reward_service has nothing yet

    messages = await _reward_messages(platform)
    assert sorted(len(m) for m in messages) in ([5, GRANTS_PER_MESSAGE], [10, 20])
    announced = [grant["user_id"] for message in messages for grant in message]
    assert sorted(announced) == sorted(f"u-{i}" for i in range(count))
    assert all(grant["_meta"]["request_id"] for message in messages for grant in message)

    await platform.drain()
    made = await grants(platform, act["id"])
    assert len(made) == count
    assert {g.record_status for g in made} == {"issued"}
    why = await explain(platform, act["id"], "u-7")
    assert [(o["rule_id"], o["outcome"]) for o in why["outcomes"]] == [("reg", "granted")]


async def test_an_event_twice_in_a_delivery_and_again_later_is_granted_and_announced_once(
    platform: Platform,
) -> None:
    act = await _register_activity(platform)
    registered = event("user.registered", "u-twice", WHEN)
    await post(platform, registered)
    await platform.drain()
    payload = {"tenant_id": "tenant-a", "event_id": registered["event_id"]}

    await platform.deliver("activity", jobs.ACTIVITY_EVALUATE_EVENT, [payload, payload])
    await platform.deliver("activity", jobs.ACTIVITY_EVALUATE_EVENT, [payload])

    made = await grants(platform, act["id"])
    assert [g.user_id for g in made] == ["u-twice"]
    messages = await _reward_messages(platform)
    assert [[g["grant_key"] for g in m] for m in messages] == [[made[0].grant_key]]
    why = await explain(platform, act["id"], "u-twice")
    assert [(o["outcome"], o["detail"]) for o in why["outcomes"]] == [
        ("granted", made[0].grant_key)
    ]


_STAGED = "test_staged"
written: list[str] = []


async def _write_staged(ctx: dict[str, Any], session: AsyncSession) -> None:
    written.extend(session.info.pop(_STAGED, []))


@message_job("test.stage_then_fail", "activity", finish=_write_staged)
async def _stage_then_fail(ctx: dict[str, Any], session: AsyncSession, payload: dict[str, Any]):  # type: ignore[no-untyped-def]
    session.info.setdefault(_STAGED, []).append(payload["name"])
    if payload.get("fail"):
        raise ValueError("this message fails for good")


async def test_what_a_message_failing_for_good_staged_is_not_written_by_the_next(
    platform: Platform,
) -> None:
    written.clear()
    ctx = {"db": platform.db("activity"), "job_try": 1}
    delivery = [{"name": "a"}, {"name": "bad", "fail": True}, {"name": "c"}]
    with pytest.raises(ItemsFailed):
        await _stage_then_fail.coroutine(ctx, delivery)
    # handled together first (rolled back, nothing written), then one by one
    assert written == ["a", "c"]


async def test_a_bundle_of_record_status_changes_moves_every_grant_it_carries(
    platform: Platform,
) -> None:
    act = await _register_activity(platform)
    await post(platform, *[event("user.registered", f"u-{i}", WHEN) for i in range(3)])
    await platform.drain()
    made = await grants(platform, act["id"])
    changes = [
        {
            "tenant_id": "tenant-a",
            "grant_key": g.grant_key,
            "record_id": str(uuid.uuid4()),
            "record_number": g.record_number,
            "from_status": "issued",
            "to_status": "locked",
            "at": WHEN,
            "record_version": 100,
        }
        for g in made[:2]
    ]
    await platform.deliver(
        "activity", jobs.ACTIVITY_RECORD_STATUS_CHANGED, [bundle(changes, "tenant-a")]
    )
    after = {g.user_id: g.record_status for g in await grants(platform, act["id"])}
    assert after == {
        made[0].user_id: "locked",
        made[1].user_id: "locked",
        made[2].user_id: "issued",
    }
