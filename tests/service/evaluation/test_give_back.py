"""A cancelled reward gives back (SPEC §6 "Budgets"): a cancelled new-user reward does not
make its user "old", and a cancelled record frees the slot of its prize's cap it held —
once, whatever is redelivered, through the reward service's status messages."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from activity_service.evaluation import service as evaluation
from activity_service.evaluation.models import Grant, PrizeCapCounter
from contracts.payloads import RecordStatusChanged
from tests.service.evaluation.steps import (
    activity,
    event,
    explain,
    grants,
    invite_code,
    post,
    prizes,
    table,
)
from tests.service.harness import Platform


async def cancel_record_of(platform: Platform, grant: Grant, reason: str = "not eligible") -> None:
    """The operator cancels the grant's reward record; the reward service's status message
    reaches the activity service when the platform drains."""
    listed = await platform.reward.get(
        "/v1/reward-records",
        params={"activity_code": grant.activity_code, "user_id": grant.user_id},
        headers=platform.operator(),
    )
    record = next(r for r in listed.json()["items"] if r["grant_key"] == grant.grant_key)
    cancelled = await platform.reward.post(
        f"/v1/reward-records/{record['id']}/cancel",
        json={"reason": reason},
        headers=platform.operator(),
    )
    assert cancelled.status_code == 200, cancelled.text
    await platform.drain()


async def manual_activity(platform: Platform, body: dict[str, Any]) -> dict[str, Any]:
    """Manual issuance: records wait Pending, so an operator can still cancel them."""
    return await activity(platform, {"issuance_form": "manual", **body})


async def test_cancelled_new_user_reward_leaves_the_user_new(platform: Platform) -> None:
    p1, p2, p3 = await prizes(platform, 3)
    welcome = await manual_activity(
        platform,
        {
            "kind": "basic",
            "attribute": "new_user",
            "rules": [{"id": "w", "task": "register", "prize_id": p1}],
        },
    )
    await post(platform, event("user.registered", "fresh", "2026-12-02T10:00:00+08:00"))
    await platform.drain()
    (granted,) = await grants(platform, welcome["id"])
    await cancel_record_of(platform, granted)
    (after,) = await grants(platform, welcome["id"])
    assert after.record_status == "cancelled" and after.given_back_at is not None

    # Published after the cancellation: fresh never received a new-user reward.
    new_open = await activity(
        platform,
        {
            "kind": "basic",
            "attribute": "new_user",
            "rules": [{"id": "n", "task": "open_account", "prize_id": p2}],
        },
    )
    old_open = await activity(
        platform,
        {
            "kind": "basic",
            "attribute": "old_user",
            "rules": [{"id": "o", "task": "open_account", "prize_id": p3}],
        },
    )
    await post(platform, event("account.opened", "fresh", "2026-12-03T10:00:00+08:00"))
    await platform.drain()
    assert table(await grants(platform, new_open["id"])) == [("fresh", "n", p2)]
    assert await grants(platform, old_open["id"]) == []
    why = await explain(platform, old_open["id"], "fresh")
    assert [o["outcome"] for o in why["outcomes"]] == ["not_old_user"]


async def cap_count(platform: Platform, activity_id: str, user: str) -> int:
    async with platform.db("activity").session() as session:
        counter = await session.scalar(
            select(PrizeCapCounter).where(
                PrizeCapCounter.activity_id == uuid.UUID(activity_id),
                PrizeCapCounter.user_id == user,
            )
        )
        return counter.count if counter else 0


async def test_cancelled_record_frees_its_cap_slot_once(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    act = await manual_activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [{"id": "reg", "task": "register", "prize_id": prize}],
            "prize_limits": [{"prize_id": prize, "max_per_user": 1}],
        },
    )
    code = await invite_code(platform, "inv")
    for invitee in ("a", "b"):
        await post(
            platform,
            event("user.registered", invitee, "2026-12-02T10:00:00+08:00", invite_code=code),
        )
        await platform.drain()
    (first,) = await grants(platform, act["id"])
    assert first.counterpart_id == "a" and first.cap_slot
    assert await cap_count(platform, act["id"], "inv") == 1
    why = await explain(platform, act["id"], "inv")
    assert [o["outcome"] for o in why["outcomes"]] == ["cap_reached"]

    await cancel_record_of(platform, first)
    assert await cap_count(platform, act["id"], "inv") == 0
    # A redelivered (or late, older) status message gives nothing back a second time.
    change = RecordStatusChanged(
        tenant_id=first.tenant_id,
        grant_key=first.grant_key,
        record_id=str(uuid.uuid4()),
        record_number="RR-x",
        from_status="pending",
        to_status="cancelled",
        at=platform.clock.now(),
        record_version=2,
    )
    async with platform.db("activity").session() as session:
        await evaluation.follow_record_status(session, change)
    assert await cap_count(platform, act["id"], "inv") == 0

    # The freed slot goes to the inviter's next qualifying invitee.
    await post(
        platform, event("user.registered", "c", "2026-12-03T10:00:00+08:00", invite_code=code)
    )
    await platform.drain()
    rows = await grants(platform, act["id"])
    assert sorted((g.counterpart_id, g.record_status) for g in rows) == [
        ("a", "cancelled"),
        ("c", "pending"),
    ]
    assert await cap_count(platform, act["id"], "inv") == 1


async def test_a_delivery_of_status_messages_is_followed_as_one_after_the_other(
    platform: Platform,
) -> None:
    (prize,) = await prizes(platform, 1)
    act = await manual_activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [{"id": "reg", "task": "register", "prize_id": prize}],
            "prize_limits": [{"prize_id": prize, "max_per_user": 1}],
        },
    )
    code = await invite_code(platform, "inv")
    await post(
        platform, event("user.registered", "a", "2026-12-02T10:00:00+08:00", invite_code=code)
    )
    await platform.drain()
    (grant,) = await grants(platform, act["id"])
    assert await cap_count(platform, act["id"], "inv") == 1
    version = grant.record_version or 0

    def change(status: str, bump: int, key: str | None = None) -> RecordStatusChanged:
        return RecordStatusChanged(
            tenant_id=grant.tenant_id,
            grant_key=key or grant.grant_key,
            record_id=str(uuid.uuid4()),
            record_number="RR-y",
            from_status="pending",
            to_status=status,
            at=platform.clock.now(),
            record_version=version + bump,
        )

    # out of order and repeated within one delivery; one for a grant that does not exist
    delivery = [
        change("cancelled", 2),
        change("issuing", 1),
        change("cancelled", 2),
        change("issued", 5, key="no-such-grant"),
    ]
    async with platform.db("activity").session() as session:
        await evaluation.follow_record_statuses(session, delivery)
    (after,) = await grants(platform, act["id"])
    assert (after.record_status, after.record_version) == ("cancelled", version + 2)
    assert await cap_count(platform, act["id"], "inv") == 0  # given back once
    # an older message arriving later changes nothing
    async with platform.db("activity").session() as session:
        await evaluation.follow_record_statuses(session, [change("issued", 1)])
    (still,) = await grants(platform, act["id"])
    assert (still.record_status, still.record_version) == ("cancelled", version + 2)
    # an empty delivery is nothing to do
    async with platform.db("activity").session() as session:
        await evaluation.follow_record_statuses(session, [])
