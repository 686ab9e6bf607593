"""Prize edits (atomic stock), the winners list with its filters, stats, CSV export, and the
app's own rewards."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime
from typing import Any

import httpx

from tests.service.harness import Platform
from tests.service.reward.helpers import (
    coupon_prize,
    create_record,
    drain,
    grant,
    physical_prize,
)


async def patch(
    platform: Platform,
    prize_id: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """An edit made on the prize as it is now (its current ETag in If-Match); a stock_delta
    alone is sent without one."""
    headers = headers or platform.operator()
    if set(body) != {"stock_delta"}:
        read = await platform.reward.get(f"/v1/prizes/{prize_id}", headers=platform.operator())
        headers = {**headers, "If-Match": read.headers.get("ETag", '"1"')}
    return await platform.reward.patch(f"/v1/prizes/{prize_id}", json=body, headers=headers)


async def test_edit_coupon_template_fields(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    response = await patch(
        platform,
        prize["id"],
        {
            "name": "60-day market data",
            "title": {"en": "Market data 60", "zh-Hant": "行情卡60"},
            "validity": {"days_from_issue": 60},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "60-day market data"
    assert body["details"]["title"]["zh-Hant"] == "行情卡60"
    assert body["details"]["validity"]["days_from_issue"] == 60
    assert body["details"]["instructions"] == "Activate in Me › Cards"  # untouched
    wrong = await patch(platform, prize["id"], {"stock": 5})
    assert wrong.status_code == 422 and wrong.json()["code"] == "field_not_applicable"


async def test_stock_adjustments_are_atomic_and_never_negative(platform: Platform) -> None:
    prize = await physical_prize(platform, stock=10)
    answers = await asyncio.gather(
        *(patch(platform, prize["id"], {"stock_delta": -1}) for _ in range(14))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 10 + [409] * 4
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {
        "stock_would_be_negative"
    }
    got = await platform.reward.get(f"/v1/prizes/{prize['id']}", headers=platform.operator())
    assert got.json()["stock"] == 0
    restocked = await patch(platform, prize["id"], {"stock_delta": 25})
    assert restocked.json()["stock"] == 25
    set_to = await patch(platform, prize["id"], {"stock": 3, "description": "Blue"})
    assert set_to.json()["stock"] == 3 and set_to.json()["details"]["description"] == "Blue"
    both = await patch(platform, prize["id"], {"stock": 3, "stock_delta": 1})
    assert both.status_code == 422


async def test_prize_edit_needs_rights_and_the_tenant(platform: Platform) -> None:
    prize = await physical_prize(platform, stock=1)
    denied = await patch(
        platform,
        prize["id"],
        {"stock_delta": 1},
        headers=platform.operator(permissions=["RightsSystemRead"]),
    )
    assert denied.status_code == 403
    other = await patch(
        platform, prize["id"], {"stock_delta": 1}, headers=platform.operator("tenant-b")
    )
    assert other.status_code == 404 and other.json()["code"] == "prize_not_found"


async def seed_winners(platform: Platform) -> dict[str, str]:
    coupon = await coupon_prize(platform)
    umbrella = await physical_prize(platform, stock=0)
    ids = {}
    for user, task, prize, form, code, when in [
        ("u-1", "register", coupon, "automatic", "ACT-A", "2026-11-20T01:00:00+00:00"),
        ("u-2", "deposit", coupon, "manual", "ACT-A", "2026-11-21T01:00:00+00:00"),
        ("u-3", "register", umbrella, "automatic", "ACT-A", "2026-11-22T01:00:00+00:00"),
        ("u-1", "register", coupon, "manual", "ACT-B", "2026-11-22T05:00:00+00:00"),
    ]:
        created = await create_record(
            platform,
            grant(
                prize["id"],
                user,
                form=form,
                activity_code=code,
                task=task,
                achieved_at=datetime.fromisoformat(when),
            ),
        )
        assert created is not None
        ids[f"{code}:{user}"] = str(created.id)
    await drain(platform)
    return ids


async def test_winners_list_filters_and_stats(platform: Platform) -> None:
    await seed_winners(platform)
    op = platform.operator()

    async def numbers(**params: str) -> list[str]:
        response = await platform.reward.get("/v1/reward-records", params=params, headers=op)
        assert response.status_code == 200, response.text
        return sorted(i["user_id"] + ":" + i["activity_code"] for i in response.json()["items"])

    assert await numbers(activity_code="ACT-A") == ["u-1:ACT-A", "u-2:ACT-A", "u-3:ACT-A"]
    assert await numbers(activity_code="ACT-A", status="pending") == ["u-2:ACT-A"]
    assert await numbers(user_id="u-1") == ["u-1:ACT-A", "u-1:ACT-B"]
    assert await numbers(task="deposit") == ["u-2:ACT-A"]
    assert await numbers(
        achieved_from="2026-11-21T00:00:00Z", achieved_until="2026-11-22T03:00:00Z"
    ) == ["u-2:ACT-A", "u-3:ACT-A"]
    assert await numbers(status="failed") == ["u-3:ACT-A"]
    assert await numbers(issued_from="2026-11-01T00:00:00Z") == ["u-1:ACT-A"]

    stats = await platform.reward.get(
        "/v1/reward-records/stats", params={"activity_code": "ACT-A"}, headers=op
    )
    assert stats.json() == {
        "activity_code": "ACT-A",
        "pending": 1,
        "issuing": 0,
        "issued": 1,
        "failed": 1,
        "cancelled": 0,
        "locked": 0,
        "all": 3,
    }
    bad = await platform.reward.get("/v1/reward-records", params={"status": "lost"}, headers=op)
    assert bad.status_code == 422


async def test_winners_list_pages_with_a_cursor(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    for i in range(5):
        await create_record(platform, grant(prize["id"], f"u-{i}", form="manual"))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await platform.reward.get(
            "/v1/reward-records", params=params, headers=platform.operator()
        )
        seen += [i["id"] for i in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 5


async def test_winners_csv_export(platform: Platform) -> None:
    await seed_winners(platform)
    response = await platform.reward.get(
        "/v1/reward-records/export",
        params={"activity_code": "ACT-A"},
        headers=platform.operator(),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "reward-records-ACT-A.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))
    assert [(r["user_id"], r["status"]) for r in rows] == [
        ("u-1", "issued"),
        ("u-2", "pending"),
        ("u-3", "failed"),
    ]
    assert rows[2]["failure_reason"] == "out_of_stock"
    assert rows[0]["number"].startswith("RR-") and rows[0]["prize_name"] == "30-day market data"
    other = await platform.reward.get(
        "/v1/reward-records/export", headers=platform.operator("tenant-b")
    )
    assert other.text.lstrip("\ufeff").count("\n") == 1  # header only


async def test_my_rewards_are_only_mine(platform: Platform) -> None:
    await seed_winners(platform)
    mine = await platform.reward.get("/v1/me/rewards", headers=platform.user("u-1"))
    assert mine.status_code == 200
    items = mine.json()["items"]
    assert sorted(i["activity_code"] for i in items) == ["ACT-A", "ACT-B"]
    assert "grant_key" not in items[0]
    pending = await platform.reward.get(
        "/v1/me/rewards", params={"status": "pending"}, headers=platform.user("u-1")
    )
    assert [i["activity_code"] for i in pending.json()["items"]] == ["ACT-B"]
    other_tenant = await platform.reward.get(
        "/v1/me/rewards", headers=platform.user("u-1", tenant="tenant-b")
    )
    assert other_tenant.json()["items"] == []
    as_operator = await platform.reward.get("/v1/me/rewards", headers=platform.operator())
    assert as_operator.status_code == 403
