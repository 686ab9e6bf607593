"""The first business path through all three services (in-process, real Postgres/Redis)."""

from __future__ import annotations

from tests.service.flows import create_coupon_prize, create_register_activity, registered_event
from tests.service.harness import Platform


async def test_registration_with_invite_code_earns_coupon_and_binds(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await create_register_activity(platform, prize["id"])
    assert activity["status"] == "running"

    code = await platform.referral.get("/v1/me/invite-code", headers=platform.user("u-inviter"))
    assert code.status_code == 200, code.text
    invite_code = code.json()["code"]

    event = registered_event("u-new", "evt-1", invite_code)
    first = await platform.activity.post("/v1/events", json=event, headers=platform.service())
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    again = await platform.activity.post("/v1/events", json=event, headers=platform.service())
    assert again.status_code == 202 and again.json()["status"] == "duplicate"

    await platform.drain()

    records = await platform.reward.get(
        "/v1/reward-records",
        params={"activity_code": activity["activity_code"]},
        headers=platform.operator(),
    )
    assert records.status_code == 200
    items = records.json()["items"]
    assert len(items) == 1
    record = items[0]
    assert record["status"] == "issued" and record["user_id"] == "u-new"

    detail = await platform.reward.get(
        f"/v1/reward-records/{record['id']}", headers=platform.operator()
    )
    moves = [(t["from_status"], t["to_status"]) for t in detail.json()["transitions"]]
    assert moves == [(None, "pending"), ("pending", "issuing"), ("issuing", "issued")]

    coupons = await platform.reward.get("/v1/me/coupons", headers=platform.user("u-new"))
    assert [c["status"] for c in coupons.json()["items"]] == ["unused"]

    bindings = await platform.referral.get("/v1/bindings/u-new", headers=platform.operator())
    registration = next(n for n in bindings.json()["nodes"] if n["node"] == "registration")
    assert registration["binding"]["inviter_id"] == "u-inviter"
    assert registration["binding"]["channel"] == "invite_code"
    assert registration["completed_at"] is not None

    # Replaying the event and re-running everything changes nothing.
    await platform.activity.post("/v1/events", json=event, headers=platform.service())
    await platform.drain()
    again_records = await platform.reward.get(
        "/v1/reward-records",
        params={"activity_code": activity["activity_code"]},
        headers=platform.operator(),
    )
    assert len(again_records.json()["items"]) == 1
