"""A batch's evaluations and registrations leave as bundles (``events.service.BUNDLE_SIZE``
to a message), and every item of every bundle is evaluated and bound as a message alone
would be; a single event keeps its own messages."""

from __future__ import annotations

from sqlalchemy import select

from activity_service.db import OutboxMessage
from activity_service.events.service import BUNDLE_SIZE
from contracts import jobs
from service_kit.outbox import OutboxRepository
from service_kit.outbox.bundles import items_of
from tests.service.evaluation.steps import (
    activity,
    event,
    grants,
    invite_code,
    invitee_prize_referral,
    post,
    prizes,
)
from tests.service.harness import Platform
from tests.service.referral.steps import registration_bindings

WHEN = "2026-12-02T10:00:00+08:00"


async def _outbox(platform: Platform) -> list[OutboxMessage]:
    async with platform.db("activity").session() as session:
        found = await session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at))
        return list(found.all())


async def test_a_batch_of_registrations_is_bundled_and_every_one_is_bound_and_evaluated(
    platform: Platform,
) -> None:
    p_inviter, p_invitee = await prizes(platform, 2)
    act = await activity(platform, invitee_prize_referral(p_inviter, p_invitee))
    code = await invite_code(platform, "inviter")
    count = 2 * BUNDLE_SIZE + 5
    registrations = [
        event("user.registered", f"u-{i}", WHEN, invite_code=code) for i in range(count)
    ]
    opening = event("account.opened", "u-0", WHEN, phone="+85291234567")
    await post(platform, *registrations, opening)

    messages = await _outbox(platform)
    by_job: dict[str, list[int]] = {}
    for m in messages:
        by_job.setdefault(m.job_name, []).append(len(items_of(m.payload)))
    # 46 evaluations and 45 registrations in bundles of 20; the opening's own messages alone.
    assert sorted(by_job[jobs.ACTIVITY_EVALUATE_EVENT]) == [6, 20, 20]
    assert sorted(by_job[jobs.REFERRAL_USER_REGISTERED]) == [5, 20, 20]
    assert by_job[jobs.REFERRAL_NODE_COMPLETED] == [1]
    assert by_job[jobs.REWARD_USER_PROFILE] == [1]
    evaluated = [
        item["event_id"]
        for m in messages
        if m.job_name == jobs.ACTIVITY_EVALUATE_EVENT
        for item in items_of(m.payload)
    ]
    assert sorted(evaluated) == sorted(e["event_id"] for e in [*registrations, opening])
    assert len({m.job_id for m in messages}) == len(messages)
    # A bundle names its tenant: a sandbox advance waiting for the tenant's work sees it.
    async with platform.db("activity").session() as session:
        owed = await OutboxRepository.from_session(session, OutboxMessage).unsent_for_tenant(
            "tenant-a"
        )
    assert owed == len(messages)

    await platform.drain()

    assert await registration_bindings(platform) == {
        ("tenant-a", f"u-{i}"): "inviter" for i in range(count)
    }
    made = await grants(platform, act["id"])
    assert sorted(g.user_id for g in made if str(g.prize_id) == p_invitee) == sorted(
        f"u-{i}" for i in range(count)
    )
    # The inviter's cap (two) holds across the bundles.
    assert [g.user_id for g in made if str(g.prize_id) == p_inviter] == ["inviter", "inviter"]


async def test_a_single_event_and_a_batch_of_one_keep_their_own_messages(
    platform: Platform,
) -> None:
    one = event("user.registered", "u-alone", WHEN)
    await post(platform, one)
    response = await platform.activity.post(
        "/v1/events", json=event("user.registered", "u-single", WHEN), headers=platform.service()
    )
    assert response.status_code == 202
    messages = await _outbox(platform)
    assert {m.job_id for m in messages if m.job_name == jobs.ACTIVITY_EVALUATE_EVENT} == {
        f"evaluate:tenant-a:{one['event_id']}",
        f"evaluate:tenant-a:{response.json()['event_id']}",
    }
    assert all(len(items_of(m.payload)) == 1 for m in messages)
    assert all("items" not in m.payload for m in messages)
