"""A prize nothing uses can be deleted; one named by an activity's rules, a reward record or
a manual issuance cannot, and the answer says what uses it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.service.activity_config.helpers import basic_body, create
from tests.service.harness import Platform
from tests.service.reward.helpers import coupon_prize, create_record, grant


async def delete(platform: Platform, prize_id: str, **kw: Any) -> httpx.Response:
    headers = kw.get("headers") or platform.operator()
    return await platform.reward.delete(f"/v1/prizes/{prize_id}", headers=headers)


async def test_an_unused_prize_is_deleted(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    stale = await delete(platform, prize["id"], headers={**platform.operator(), "If-Match": '"9"'})
    assert stale.status_code == 412 and stale.json()["code"] == "version_mismatch"
    assert (await delete(platform, prize["id"])).status_code == 204
    gone = await platform.reward.get(f"/v1/prizes/{prize['id']}", headers=platform.operator())
    assert gone.status_code == 404
    again = await delete(platform, prize["id"])
    assert again.status_code == 404 and again.json()["code"] == "prize_not_found"


async def test_a_prize_in_an_activitys_rules_is_kept_until_the_draft_goes(
    platform: Platform,
) -> None:
    prize = await coupon_prize(platform)
    draft = await create(platform, basic_body([prize["id"], prize["id"]]))
    refused = await delete(platform, prize["id"])
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "prize_in_use"
    assert refused.json()["activity_codes"] == [draft["activity_code"]]
    deleted_draft = await platform.activity.delete(
        f"/v1/activities/{draft['id']}", headers=platform.operator()
    )
    assert deleted_draft.status_code == 204
    assert (await delete(platform, prize["id"])).status_code == 204


async def test_a_prize_with_a_reward_record_is_kept(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    await create_record(platform, grant(prize["id"]))
    refused = await delete(platform, prize["id"])
    assert refused.status_code == 409
    assert refused.json()["used_by"] == ["reward_records"]


async def test_nothing_is_deleted_when_the_activity_service_cannot_answer(
    platform: Platform,
) -> None:
    prize = await coupon_prize(platform)
    settings = platform.apps["reward"].state.settings
    reachable = settings.activity_url
    settings.activity_url = "http://127.0.0.1:9"
    try:
        unknown = await delete(platform, prize["id"])
    finally:
        settings.activity_url = reachable
    assert unknown.status_code == 503 and unknown.json()["code"] == "prize_usage_unknown"
    kept = await platform.reward.get(f"/v1/prizes/{prize['id']}", headers=platform.operator())
    assert kept.status_code == 200


async def test_deleting_needs_write_permission_in_the_tenant(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    read_only = await delete(
        platform, prize["id"], headers=platform.operator(permissions=["RightsSystemRead"])
    )
    assert read_only.status_code == 403
    elsewhere = await delete(platform, prize["id"], headers=platform.operator("tenant-b"))
    assert elsewhere.status_code == 404
    assert (await delete(platform, "not-a-uuid")).status_code == 422
