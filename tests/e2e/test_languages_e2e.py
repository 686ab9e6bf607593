"""Languages end to end over real HTTP (SPEC §1.2, §6): an app user reads the reward a
registration earned — activity name and prize title — in their own language."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from tests.e2e.campaign import MARKET_DATA_COUPON, OPERATOR_PERMISSIONS, poll, publish_campaign
from tests.e2e.conftest import RunningPlatform

pytestmark = pytest.mark.e2e


def test_rewards_coupons_and_activities_in_the_readers_language(
    running_platform: RunningPlatform,
) -> None:
    p = running_platform
    op = p.token("operator", sub="ops-1", permissions=OPERATOR_PERMISSIONS)
    backend = p.token("service", sub="broker-backend")
    carol = p.token("user", sub="carol", app="broker-app")
    http = httpx.Client(timeout=10)
    now = datetime.now(UTC)

    title = {"en": "Market data card", "zh-Hans": "行情卡", "zh-Hant": "行情卡（繁）"}
    publish_campaign(
        http,
        p.urls,
        op,
        prize={**MARKET_DATA_COUPON, "title": title},
        # No Traditional name: a zh-Hant reader falls back to the Simplified one.
        name={"en": "Sign-up gift", "zh-Hans": "注册礼"},
    )
    event = {
        "event_id": "reg-carol-1",
        "type": "user.registered",
        "user_id": "carol",
        "app_id": "broker-app",
        "occurred_at": now.isoformat(),
        "phone": "+852 6000 1234",
    }
    posted = http.post(f"{p.urls['activity']}/v1/events", headers=backend, json=event)
    assert posted.status_code == 202, posted.text

    def rewards(language: str) -> httpx.Response:
        return http.get(
            f"{p.urls['reward']}/v1/me/rewards", headers={**carol, "Accept-Language": language}
        )

    hant = poll(
        lambda: rewards("zh-TW"),
        lambda r: r.json()["items"] and r.json()["items"][0]["status"] == "issued",
    )
    (item,) = hant.json()["items"]
    assert item["status"] == "issued", p.log_tail()
    assert item["prize_name"] == "行情卡（繁）" and item["prize_name_language"] == "zh-Hant"
    assert item["activity_name"] == "注册礼" and item["activity_name_language"] == "zh-Hans"
    assert hant.headers["content-language"] == "zh-Hans, zh-Hant"

    english = rewards("en-GB,en;q=0.9")
    (item,) = english.json()["items"]
    assert (item["activity_name"], item["prize_name"]) == ("Sign-up gift", "Market data card")
    assert english.headers["content-language"] == "en"

    coupons = http.get(
        f"{p.urls['reward']}/v1/me/coupons", headers={**carol, "Accept-Language": "zh-CN"}
    )
    (coupon,) = coupons.json()["items"]
    assert coupon["title_text"] == "行情卡" and coupon["activity_name"] == "注册礼"
    assert coupons.headers["content-language"] == "zh-Hans"

    activities = http.get(
        f"{p.urls['activity']}/v1/me/activities", headers={**carol, "Accept-Language": "zh-HK"}
    )
    (activity,) = activities.json()["items"]
    assert activity["name"] == "注册礼" and activity["language"] == "zh-Hans"
    assert activities.headers["content-language"] == "zh-Hans"

    # The phone of the registration reached the reward service: operators find the coupon.
    by_phone = poll(
        lambda: http.get(
            f"{p.urls['reward']}/v1/coupons", headers=op, params={"phone": "85260001234"}
        ),
        lambda r: r.json()["items"],
    )
    assert [c["id"] for c in by_phone.json()["items"]] == [coupon["id"]], p.log_tail()
