"""Manual issuance to one user (SPEC §3.4): without and with review, replays, bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.service.flows import create_coupon_prize
from tests.service.harness import Platform
from tests.service.reward_center.steps import (
    OPS_1,
    OPS_2,
    OPS_3,
    issue,
    non_standard_activity,
    ops,
    winners,
)


def body(activity: dict[str, Any], prize: dict[str, Any], user: str = "u-1", **extra: Any) -> dict:
    return {
        "activity_code": activity["activity_code"],
        "user_id": user,
        "prize_id": prize["id"],
        **extra,
    }


async def test_without_review_the_record_is_created_and_issued(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=False)
    response = await issue(platform, body(activity, prize, remarks="goodwill", app_id="broker-app"))
    assert response.status_code == 201, response.text
    issuance = response.json()
    assert issuance["status"] == "approved" and issuance["review_required"] is False
    assert issuance["submitter"] == f"operator:{OPS_1}" and issuance["remarks"] == "goodwill"
    (ref,) = issuance["records"]
    assert ref["status"] == "issued"  # a coupon is fulfilled in the creating transaction
    await platform.drain()
    (record,) = await winners(platform, activity["activity_code"])
    assert record["id"] == ref["id"] and record["status"] == "issued"
    assert record["task"] == "manual" and record["user_id"] == "u-1"
    assert record["issuance_form"] == "automatic"
    coupons = await platform.reward.get("/v1/me/coupons", headers=platform.user("u-1"))
    assert [c["record_id"] for c in coupons.json()["items"]] == [ref["id"]]
    again = await platform.reward.get(
        f"/v1/reward-center/issuances/{issuance['id']}", headers=platform.operator()
    )
    assert again.json()["records"][0]["status"] == "issued"
    stats = await platform.reward.get(
        "/v1/reward-records/stats",
        params={"activity_code": activity["activity_code"]},
        headers=platform.operator(),
    )
    assert stats.json()["issued"] == 1


async def test_manual_issuance_form_leaves_records_pending(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=False, form="manual")
    response = await issue(platform, body(activity, prize, quantity=2))
    assert response.status_code == 201, response.text
    refs = response.json()["records"]
    assert [r["status"] for r in refs] == ["pending", "pending"]
    assert len({r["number"] for r in refs}) == 2
    await platform.drain()
    submitted = await platform.reward.post(
        f"/v1/reward-records/{refs[0]['id']}/submit", headers=platform.operator()
    )
    assert submitted.status_code == 200, submitted.text
    await platform.drain()
    statuses = sorted(r["status"] for r in await winners(platform, activity["activity_code"]))
    assert statuses == ["issued", "pending"]


async def test_review_waits_for_another_operator(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=True)
    created = await issue(platform, body(activity, prize))
    assert created.status_code == 201, created.text
    issuance = created.json()
    assert issuance["status"] == "awaiting_review" and issuance["records"] == []
    await platform.drain()
    assert await winners(platform, activity["activity_code"]) == []
    url = f"/v1/reward-center/issuances/{issuance['id']}/approve"
    own = await platform.reward.post(url, headers=ops(platform, OPS_1))
    assert own.status_code == 403 and own.json()["code"] == "self_approval"
    approved = await platform.reward.post(url, headers=ops(platform, OPS_2))
    assert approved.status_code == 200, approved.text
    view = approved.json()
    assert view["status"] == "approved" and view["reviewer"] == f"operator:{OPS_2}"
    assert len(view["records"]) == 1
    replay = await platform.reward.post(url, headers=ops(platform, OPS_2))
    assert replay.status_code == 200 and replay.json()["records"] == view["records"]
    late = await platform.reward.post(url, headers=ops(platform, OPS_3))
    assert late.status_code == 409 and late.json()["code"] == "issuance_not_awaiting_review"
    await platform.drain()
    (record,) = await winners(platform, activity["activity_code"])
    assert record["status"] == "issued"


async def test_reject_needs_a_reason_and_creates_nothing(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=True)
    issuance = (await issue(platform, body(activity, prize))).json()
    url = f"/v1/reward-center/issuances/{issuance['id']}"
    no_reason = await platform.reward.post(f"{url}/reject", json={}, headers=ops(platform, OPS_2))
    assert no_reason.status_code == 422 and no_reason.json()["code"] == "reason_required"
    rejected = await platform.reward.post(
        f"{url}/reject", json={"reason": "Wrong user"}, headers=ops(platform, OPS_2)
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reject_reason"] == "Wrong user"
    approve = await platform.reward.post(f"{url}/approve", headers=ops(platform, OPS_3))
    assert approve.status_code == 409
    await platform.drain()
    assert await winners(platform, activity["activity_code"]) == []
    listed = await platform.reward.get(
        "/v1/reward-center/issuances", params={"status": "rejected"}, headers=platform.operator()
    )
    assert [i["id"] for i in listed.json()["items"]] == [issuance["id"]]


async def test_two_concurrent_approvals_create_one_record(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=True)
    issuance = (await issue(platform, body(activity, prize))).json()
    url = f"/v1/reward-center/issuances/{issuance['id']}/approve"
    first, second = await asyncio.gather(
        platform.reward.post(url, headers=ops(platform, OPS_2)),
        platform.reward.post(url, headers=ops(platform, OPS_3)),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    loser = first if first.status_code == 409 else second
    assert loser.json()["code"] == "issuance_not_awaiting_review"
    await platform.drain()
    (record,) = await winners(platform, activity["activity_code"])
    assert record["status"] == "issued"


async def test_unknown_activity_and_prize_are_refused(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=False)
    unknown = await issue(
        platform, {"activity_code": "ACT-NOPE0000", "user_id": "u-1", "prize_id": prize["id"]}
    )
    assert unknown.status_code == 422 and unknown.json()["code"] == "activity_not_found"
    no_prize = await issue(platform, body(activity, {"id": "00000000-0000-0000-0000-000000000001"}))
    assert no_prize.status_code == 422 and no_prize.json()["code"] == "prize_not_found"
    other_prize = await create_coupon_prize(platform, tenant="tenant-b")
    foreign = await issue(platform, body(activity, other_prize))
    assert foreign.status_code == 422 and foreign.json()["code"] == "prize_not_found"
    closed = await non_standard_activity(platform, review=False)
    await platform.activity.post(
        f"/v1/activities/{closed['id']}/close", headers=platform.operator()
    )
    shut = await issue(platform, body(closed, prize))
    assert shut.status_code == 422 and shut.json()["code"] == "activity_closed"
    listed = await platform.reward.get("/v1/reward-center/issuances", headers=platform.operator())
    assert listed.json()["items"] == []


async def test_idempotent_replay_returns_the_same_issuance(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=False)
    first = await issue(platform, body(activity, prize), key="k-1")
    assert first.status_code == 201, first.text
    again = await issue(platform, body(activity, prize), key="k-1")
    # the stored answer, byte for byte
    assert again.status_code == 201 and again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await issue(platform, body(activity, prize, user="u-2"), key="k-1")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    racing = await asyncio.gather(
        *(issue(platform, body(activity, prize, user="u-3"), key="k-2") for _ in range(4))
    )
    # the others wait for the first one's transaction, then replay its answer
    assert all(r.status_code == 201 for r in racing), [r.text for r in racing]
    assert sum("Idempotent-Replayed" in r.headers for r in racing) == 3
    assert len({r.json()["id"] for r in racing}) == 1
    await platform.drain()
    users = sorted(r["user_id"] for r in await winners(platform, activity["activity_code"]))
    assert users == ["u-1", "u-3"]


async def test_permissions_and_tenants(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=True)
    reader = platform.operator(permissions=["RightsSystemRead"], sub="viewer")
    refused = await platform.reward.post(
        "/v1/reward-center/issuances", json=body(activity, prize), headers=reader
    )
    assert refused.status_code == 403
    user = await platform.reward.post(
        "/v1/reward-center/issuances", json=body(activity, prize), headers=platform.user("u-1")
    )
    assert user.status_code == 403
    issuance = (await issue(platform, body(activity, prize))).json()
    url = f"/v1/reward-center/issuances/{issuance['id']}"
    assert (await platform.reward.get(url, headers=reader)).status_code == 200
    read_only_approve = await platform.reward.post(f"{url}/approve", headers=reader)
    assert read_only_approve.status_code == 403
    activity_only = platform.operator(permissions=["ActivityCenterFull"], sub="ops-9")
    assert (await platform.reward.get(url, headers=activity_only)).status_code == 403
    other = platform.operator("tenant-b", sub=OPS_2)
    hidden = await platform.reward.get(url, headers=other)
    assert hidden.status_code == 404 and hidden.json()["code"] == "issuance_not_found"
    foreign_approve = await platform.reward.post(f"{url}/approve", headers=other)
    assert foreign_approve.status_code == 404
    listed = await platform.reward.get("/v1/reward-center/issuances", headers=other)
    assert listed.json()["items"] == []
    # Another tenant's activity code is not found either: codes are looked up per tenant.
    b_prize = await create_coupon_prize(platform, tenant="tenant-b")
    cross = await issue(platform, body(activity, b_prize), sub=OPS_2, tenant="tenant-b")
    assert cross.status_code == 422 and cross.json()["code"] == "activity_not_found"


async def test_activity_service_down_is_a_503_and_stores_nothing(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=False)
    # Nothing listens on the discard port: the lookup fails fast after its retries.
    monkeypatch.setattr(
        platform.apps["reward"].state.settings, "activity_url", "http://127.0.0.1:9"
    )
    down = await issue(platform, body(activity, prize), key="k-down")
    assert down.status_code == 503 and down.json()["code"] == "upstream_unavailable"
    monkeypatch.undo()
    retried = await issue(platform, body(activity, prize), key="k-down")
    assert retried.status_code == 201, retried.text
