"""If-Match on prizes and tenant settings (service_kit.preconditions): the ETag on reads,
428 without it, 412 when another edit was saved meanwhile — never a lost update."""

from __future__ import annotations

import asyncio

import httpx

from tests.service.flows import create_coupon_prize
from tests.service.harness import Platform
from tests.service.reward.helpers import physical_prize


def _problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


async def test_prize_edits_need_the_current_etag(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    url = f"/v1/prizes/{prize['id']}"
    read = await platform.reward.get(url, headers=platform.operator())
    assert read.headers["ETag"] == '"1"' and read.json()["version"] == 1
    edit = {"name": "Market data, 60 days"}
    _problem(
        await platform.reward.patch(url, json=edit, headers=platform.operator()),
        428,
        "precondition_required",
    )
    garbage = {**platform.operator(), "If-Match": '"one"'}
    _problem(
        await platform.reward.patch(url, json=edit, headers=garbage), 428, "precondition_required"
    )
    first = await platform.reward.patch(
        url, json=edit, headers={**platform.operator(), "If-Match": '"1"'}
    )
    assert first.status_code == 200 and first.headers["ETag"] == '"2"', first.text
    # a second operator still holding version 1 cannot overwrite the first one's change
    stale = await platform.reward.patch(
        url, json={"name": "stale"}, headers={**platform.operator(sub="ops-2"), "If-Match": '"1"'}
    )
    _problem(stale, 412, "version_mismatch")
    assert stale.json()["current_version"] == 2
    weak = await platform.reward.patch(
        url, json={"name": "weak"}, headers={**platform.operator(), "If-Match": 'W/"2"'}
    )
    assert weak.status_code == 200 and weak.json()["name"] == "weak"
    # another tenant's prize stays a 404, whatever the ETag
    elsewhere = {**platform.operator("tenant-b"), "If-Match": '"3"'}
    _problem(await platform.reward.patch(url, json=edit, headers=elsewhere), 404, "prize_not_found")
    final = await platform.reward.get(url, headers=platform.operator())
    assert final.json()["name"] == "weak" and final.headers["ETag"] == '"3"'


async def test_a_stock_delta_alone_needs_no_etag(platform: Platform) -> None:
    prize = await physical_prize(platform, stock=5)
    url = f"/v1/prizes/{prize['id']}"
    delta = await platform.reward.patch(url, json={"stock_delta": 2}, headers=platform.operator())
    assert delta.status_code == 200 and delta.json()["stock"] == 7
    assert delta.headers["ETag"] == '"1"'  # the definition did not change
    # setting the stock is an edit of the definition: it needs the ETag
    absolute = await platform.reward.patch(url, json={"stock": 1}, headers=platform.operator())
    _problem(absolute, 428, "precondition_required")
    mixed = {"stock_delta": 1, "description": "Blue"}
    _problem(
        await platform.reward.patch(url, json=mixed, headers=platform.operator()),
        428,
        "precondition_required",
    )
    # a delta sent with a stale ETag is still refused
    stale = {**platform.operator(), "If-Match": '"9"'}
    _problem(
        await platform.reward.patch(url, json={"stock_delta": 1}, headers=stale),
        412,
        "version_mismatch",
    )


async def test_concurrent_prize_edits_on_one_version_one_wins(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    url = f"/v1/prizes/{prize['id']}"
    answers = await asyncio.gather(
        *(
            platform.reward.patch(
                url, json={"name": f"name-{i}"}, headers={**platform.operator(), "If-Match": '"1"'}
            )
            for i in range(4)
        )
    )
    assert sorted(r.status_code for r in answers) == [200, 412, 412, 412]
    winner = next(r for r in answers if r.status_code == 200)
    final = await platform.reward.get(url, headers=platform.operator())
    assert final.json()["name"] == winner.json()["name"] and final.json()["version"] == 2


async def test_tenant_settings_need_the_current_etag(platform: Platform) -> None:
    url = "/v1/tenant-settings"
    defaults = await platform.activity.get(url, headers=platform.operator())
    assert defaults.headers["ETag"] == '"0"' and defaults.json()["version"] == 0
    body = {"time_zone": "UTC", "base_currency": "USD"}
    _problem(
        await platform.activity.put(url, json=body, headers=platform.operator()),
        428,
        "precondition_required",
    )
    first = await platform.activity.put(
        url, json=body, headers={**platform.operator(), "If-Match": '"0"'}
    )
    assert first.status_code == 200 and first.headers["ETag"] == '"1"', first.text
    # someone who read the defaults before the first change cannot overwrite it
    stale = await platform.activity.put(
        url,
        json={"time_zone": "Asia/Tokyo", "base_currency": "JPY"},
        headers={**platform.operator(sub="ops-2"), "If-Match": '"0"'},
    )
    _problem(stale, 412, "version_mismatch")
    ahead = {**platform.operator(), "If-Match": '"7"'}
    _problem(await platform.activity.put(url, json=body, headers=ahead), 412, "version_mismatch")
    second = await platform.activity.put(
        url,
        json={"time_zone": "Asia/Tokyo", "base_currency": "JPY"},
        headers={**platform.operator(), "If-Match": '"1"'},
    )
    assert second.status_code == 200 and second.headers["ETag"] == '"2"'
    read = await platform.activity.get(url, headers=platform.operator())
    assert (read.json()["time_zone"], read.headers["ETag"]) == ("Asia/Tokyo", '"2"')
    other = await platform.activity.get(url, headers=platform.operator("tenant-b"))
    assert other.headers["ETag"] == '"0"' and other.json()["time_zone"] == "Asia/Hong_Kong"


async def test_referral_settings_need_the_current_etag(platform: Platform) -> None:
    url = "/v1/settings"
    defaults = await platform.referral.get(url, headers=platform.operator())
    assert defaults.headers["ETag"] == '"0"'
    body = {"registration_bind_grace_hours": 24}
    _problem(
        await platform.referral.put(url, json=body, headers=platform.operator()),
        428,
        "precondition_required",
    )
    racing = await asyncio.gather(
        *(
            platform.referral.put(
                url,
                json={"registration_bind_grace_hours": hours},
                headers={**platform.operator(), "If-Match": '"0"'},
            )
            for hours in (24, 48, 96)
        )
    )
    assert sorted(r.status_code for r in racing) == [200, 412, 412]
    winner = next(r for r in racing if r.status_code == 200)
    assert winner.headers["ETag"] == '"1"' and winner.json()["version"] == 1
    read = await platform.referral.get(url, headers=platform.operator())
    assert read.json() == winner.json()
