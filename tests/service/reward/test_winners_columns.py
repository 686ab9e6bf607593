"""Winners list columns 企业认证 (the user's certified enterprise, whatever the task) and
发放账户 (the account actually paid), in the list, a record's details and the CSV export."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.service.harness import Platform
from tests.service.reward.conftest import CASH_PAYMENTS_URL, CashSystem
from tests.service.reward.helpers import (
    cash_prize,
    coupon_prize,
    create_record,
    drain,
    grant,
    use_cash_endpoint,
)


@pytest.fixture(autouse=True)
def fast_retries(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform.settings["reward"], "cash_retry_base_seconds", 0.05)


async def certify(platform: Platform, event_id: str, user: str, at: str, **fields: Any) -> None:
    response = await platform.activity.post(
        "/v1/events",
        json={
            "event_id": event_id,
            "type": "enterprise.certified",
            "user_id": user,
            "app_id": "broker-app",
            "occurred_at": at,
            **fields,
        },
        headers=platform.service(),
    )
    assert response.status_code == 202, response.text


async def winners(platform: Platform) -> dict[str, dict[str, Any]]:
    response = await platform.reward.get(
        "/v1/reward-records", params={"activity_code": "ACT-TEST0001"}, headers=platform.operator()
    )
    assert response.status_code == 200, response.text
    return {r["user_id"]: r for r in response.json()["items"]}


async def test_the_certified_enterprise_shows_whatever_the_task(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    # A sign-up reward: its task has nothing to do with enterprises.
    signup = await create_record(platform, grant(prize["id"], "u-ent"))
    assert signup is not None
    await create_record(platform, grant(prize["id"], "u-plain"))
    # A record whose own task named an enterprise, for a user with no certification known.
    named = grant(prize["id"], "u-old", task="enterprise_certification")
    await create_record(platform, named.model_copy(update={"enterprise_name": "Old Co"}))
    assert (await winners(platform))["u-ent"]["enterprise_name"] is None

    await certify(
        platform,
        "c-1",
        "u-ent",
        "2026-11-20T00:00:00+00:00",
        enterprise_id="e-1",
        enterprise_name="Acme Trading Ltd",
    )
    await certify(
        platform,
        "c-0",
        "u-ent",
        "2026-11-10T00:00:00+00:00",
        enterprise_id="e-0",
        enterprise_name="Earlier Ltd",
    )
    await certify(platform, "c-2", "u-noname", "2026-11-20T00:00:00+00:00", enterprise_id="e-7")
    await platform.drain()
    await create_record(platform, grant(prize["id"], "u-noname"))

    lines = await winners(platform)
    assert lines["u-ent"]["enterprise_name"] == "Acme Trading Ltd"  # the newest, not the late
    assert lines["u-plain"]["enterprise_name"] is None
    assert lines["u-old"]["enterprise_name"] == "Old Co"
    assert lines["u-noname"]["enterprise_name"] == "e-7"
    detail = await platform.reward.get(
        f"/v1/reward-records/{signup.id}", headers=platform.operator()
    )
    assert detail.json()["enterprise_name"] == "Acme Trading Ltd"
    export = await platform.reward.get(
        "/v1/reward-records/export",
        params={"activity_code": "ACT-TEST0001"},
        headers=platform.operator(),
    )
    rows = {r["user_id"]: r for r in csv.DictReader(io.StringIO(export.text.lstrip("\ufeff")))}
    assert rows["u-ent"]["enterprise_name"] == "Acme Trading Ltd"
    assert rows["u-plain"]["enterprise_name"] == ""
    # Another tenant's certification of the same user id says nothing here.
    other = await platform.reward.get("/v1/reward-records", headers=platform.operator("tenant-b"))
    assert other.json()["items"] == []


async def test_the_account_issued_to_is_the_one_the_cash_system_paid(
    platform: Platform, cash: CashSystem
) -> None:
    await use_cash_endpoint(platform, CASH_PAYMENTS_URL)
    paid = await create_record(platform, grant((await cash_prize(platform))["id"], "u-cash"))
    coupon = await create_record(platform, grant((await coupon_prize(platform))["id"], "u-cp"))
    assert paid is not None and coupon is not None
    await drain(platform)
    lines = await winners(platform)
    assert lines["u-cash"]["status"] == "issued"
    assert lines["u-cash"]["issued_to"] == "u-cash-HKD"
    assert lines["u-cp"]["issued_to"] == "u-cp"  # a coupon goes to the user's own wallet
    detail = await platform.reward.get(f"/v1/reward-records/{paid.id}", headers=platform.operator())
    assert detail.json()["payout"]["account_id"] == "u-cash-HKD"
    export = await platform.reward.get(
        "/v1/reward-records/export", params={"prize_type": "cash"}, headers=platform.operator()
    )
    (row,) = csv.DictReader(io.StringIO(export.text.lstrip("\ufeff")))
    assert row["issued_to"] == "u-cash-HKD"
