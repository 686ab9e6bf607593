"""Languages everywhere a user reads (SPEC §1.2, §6): rewards, coupons and shipments show
the activity's name and the prize's title in the caller's Accept-Language, with the
fallback of `/v1/me/activities`, and say which language they actually served."""

from __future__ import annotations

from typing import Any

from tests.service.flows import WINDOW, registered_event
from tests.service.harness import Platform
from tests.service.reward.helpers import create_prize, create_record, grant
from tests.service.reward_center.steps import issue, non_standard_activity

NAMES = {"en": "Sign-up gift", "zh-Hans": "注册礼", "zh-Hant": "註冊禮"}
# The coupon has no Traditional title: a zh-Hant reader gets the Simplified one.
COUPON = {
    "type": "coupon",
    "name": "30-day market data",
    "coupon_type": "market_data",
    "title": {"en": "Market data card", "zh-Hans": "行情卡"},
    "validity": {"days_from_issue": 30},
}
UMBRELLA = {
    "type": "physical",
    "name": "Umbrella",
    "title": {"en": "Branded umbrella", "zh-Hans": "品牌雨伞", "zh-Hant": "品牌雨傘"},
    "stock": 5,
}


async def activity_with(platform: Platform, prizes: list[str], name: dict[str, str]) -> Any:
    created = await platform.activity.post(
        "/v1/activities",
        json={
            "kind": "basic",
            "name": name,
            **WINDOW,
            "attribute": "unlimited",
            "timing": "real_time",
            "rules": [{"task": "register", "prize_id": p} for p in prizes],
        },
        headers=platform.operator(),
    )
    assert created.status_code == 201, created.text
    published = await platform.activity.post(
        f"/v1/activities/{created.json()['id']}/publish", headers=platform.operator()
    )
    assert published.status_code == 200, published.text
    return published.json()


async def mine(platform: Platform, path: str, user: str, language: str | None) -> Any:
    headers = platform.user(user)
    if language is not None:
        headers["Accept-Language"] = language
    response = await platform.reward.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def test_rewards_coupons_and_shipments_follow_the_reader(platform: Platform) -> None:
    coupon = await create_prize(platform, COUPON)
    umbrella = await create_prize(platform, UMBRELLA)
    await activity_with(platform, [coupon["id"], umbrella["id"]], NAMES)
    posted = await platform.activity.post(
        "/v1/events", json=registered_event("u-lang", "reg-lang"), headers=platform.service()
    )
    assert posted.status_code == 202, posted.text
    await platform.drain()

    hant = await mine(platform, "/v1/me/rewards", "u-lang", "zh-HK, en;q=0.5")
    items = {r["prize_type"]: r for r in hant.json()["items"]}
    assert {r["activity_name"] for r in items.values()} == {"註冊禮"}
    assert items["physical"]["prize_name"] == "品牌雨傘"
    assert items["physical"]["prize_name_language"] == "zh-Hant"
    assert items["coupon"]["prize_name"] == "行情卡"
    assert items["coupon"]["prize_name_language"] == "zh-Hans"
    assert hant.headers["content-language"] == "zh-Hans, zh-Hant"
    assert "Accept-Language" in hant.headers["vary"]

    default = await mine(platform, "/v1/me/rewards", "u-lang", None)
    assert {(r["activity_name"], r["prize_name"]) for r in default.json()["items"]} == {
        ("Sign-up gift", "Market data card"),
        ("Sign-up gift", "Branded umbrella"),
    }
    assert default.headers["content-language"] == "en"
    # An unsupported language is read as the default, English.
    french = await mine(platform, "/v1/me/rewards", "u-lang", "fr-FR")
    assert french.headers["content-language"] == "en"

    coupons = await mine(platform, "/v1/me/coupons", "u-lang", "zh-Hans")
    (mine_coupon,) = coupons.json()["items"]
    assert mine_coupon["title_text"] == "行情卡" and mine_coupon["title_language"] == "zh-Hans"
    assert mine_coupon["activity_name"] == "注册礼"
    assert mine_coupon["activity_name_language"] == "zh-Hans"
    # The full texts are still there.
    assert {k: v for k, v in mine_coupon["title"].items() if v} == COUPON["title"]
    assert coupons.headers["content-language"] == "zh-Hans"
    broker = await platform.reward.get(
        f"/v1/coupons/{mine_coupon['id']}",
        headers={**platform.service(), "Accept-Language": "en"},
    )
    assert broker.json()["title_text"] == "Market data card"
    assert broker.json()["activity_name"] == "Sign-up gift"

    shipments = await mine(platform, "/v1/me/shipments", "u-lang", "zh-TW")
    (shipment,) = shipments.json()["items"]
    assert shipment["prize_name"] == "品牌雨傘" and shipment["prize_name_language"] == "zh-Hant"
    assert shipment["activity_name"] == "註冊禮"
    # The operators' fulfilment queue keeps the prize's operator name.
    queue = await platform.reward.get("/v1/shipments", headers=platform.operator())
    assert queue.json()["items"][0]["prize_name"] == "Umbrella"


async def test_a_missing_language_falls_back_and_says_so(platform: Platform) -> None:
    coupon = await create_prize(platform, COUPON)
    await activity_with(platform, [coupon["id"]], {"zh-Hans": "注册礼"})
    await platform.activity.post(
        "/v1/events", json=registered_event("u-fb", "reg-fb"), headers=platform.service()
    )
    await platform.drain()
    english = await mine(platform, "/v1/me/rewards", "u-fb", "en")
    (item,) = english.json()["items"]
    assert item["activity_name"] == "注册礼" and item["activity_name_language"] == "zh-Hans"
    assert item["prize_name"] == "Market data card" and item["prize_name_language"] == "en"
    assert english.headers["content-language"] == "zh-Hans, en"
    # /v1/me/activities says the same of the same name.
    activities = await platform.activity.get(
        "/v1/me/activities", headers={**platform.user("u-fb"), "Accept-Language": "en"}
    )
    (activity,) = activities.json()["items"]
    assert activity["name"] == "注册礼" and activity["language"] == "zh-Hans"
    assert activities.headers["content-language"] == "zh-Hans"


async def test_manual_issuances_carry_the_activity_names(platform: Platform) -> None:
    cash = await create_prize(
        platform,
        {
            "type": "cash",
            "name": "HKD 100",
            "title": {"en": "HKD 100 cash", "zh-Hant": "港幣100元現金"},
            "amount": "100",
            "currency": "HKD",
        },
    )
    activity = await non_standard_activity(platform, review=False, form="manual")
    created = await issue(
        platform,
        {"activity_code": activity["activity_code"], "user_id": "u-man", "prize_id": cash["id"]},
    )
    assert created.status_code == 201, created.text
    response = await mine(platform, "/v1/me/rewards", "u-man", "zh-CN")
    (item,) = response.json()["items"]
    assert item["activity_name"] == "大客户回馈" and item["activity_name_language"] == "zh-Hans"
    assert item["prize_name"] == "港幣100元現金" and item["prize_name_language"] == "zh-Hant"


async def test_records_without_texts_are_served_as_they_are(platform: Platform) -> None:
    # A prize without a title and a grant from before names per language.
    plain = await create_prize(
        platform, {"type": "physical", "name": "Mug", "description": "", "stock": 1}
    )
    assert "title" not in plain["details"]
    await create_record(platform, grant(plain["id"], "u-old"))
    response = await mine(platform, "/v1/me/rewards", "u-old", "zh-Hant")
    (item,) = response.json()["items"]
    assert item["activity_name"] == "Sign-up gift" and item["activity_name_language"] is None
    assert item["prize_name"] == "Mug" and item["prize_name_language"] is None
    assert response.headers["content-language"] == "zh-Hant"


async def test_prize_titles_in_three_languages_for_every_type(platform: Platform) -> None:
    umbrella = await create_prize(platform, UMBRELLA)
    assert umbrella["details"]["title"]["zh-Hant"] == "品牌雨傘"
    read = await platform.reward.get(f"/v1/prizes/{umbrella['id']}", headers=platform.operator())
    patched = await platform.reward.patch(
        f"/v1/prizes/{umbrella['id']}",
        json={"title": {"en": "Umbrella", "zh-Hans": "雨伞", "zh-Hant": "雨傘"}},
        headers={**platform.operator(), "If-Match": read.headers["ETag"]},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["details"]["title"]["zh-Hans"] == "雨伞"
    cash = await platform.reward.post(
        "/v1/prizes",
        json={"type": "cash", "name": "HKD 5", "title": {}, "amount": "5", "currency": "HKD"},
        headers=platform.operator(),
    )
    assert cash.status_code == 422
    too_long = await platform.reward.post(
        "/v1/prizes",
        json={**UMBRELLA, "title": {"en": "x" * 201}},
        headers=platform.operator(),
    )
    assert too_long.status_code == 422
