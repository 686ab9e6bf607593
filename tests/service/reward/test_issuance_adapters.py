"""One fulfilment adapter per prize type: success, failure, and redelivery doing nothing new."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from contracts import jobs
from reward_service.payouts.models import CashPayout
from reward_service.prizes.models import Prize
from reward_service.records.fulfilment import TransientFulfilmentError
from reward_service.records.tasks import issue_record
from reward_service.shipments.models import Shipment
from reward_service.wallet.models import WalletCoupon
from service_kit.http import ServiceClient
from service_kit.queue import enqueue
from tests.service.harness import Platform
from tests.service.reward.conftest import BLOCKED_USER, CASH_PAYMENTS_URL, CashSystem
from tests.service.reward.helpers import (
    cash_prize,
    count,
    coupon_prize,
    create_record,
    drain,
    grant,
    physical_prize,
    record,
    transitions,
    use_cash_endpoint,
)


@pytest.fixture(autouse=True)
def fast_retries(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform.settings["reward"], "cash_retry_base_seconds", 0.05)


async def redeliver_issue(platform: Platform, record_id: uuid.UUID) -> None:
    """A second ``reward.issue`` for the same record, as a crash or a re-drive would send."""
    await enqueue(
        platform.apps["reward"].state.arq,
        platform.settings["reward"].queue_prefix,
        "reward",
        jobs.REWARD_ISSUE,
        {"tenant_id": "tenant-a", "record_id": str(record_id)},
        f"again:{uuid.uuid4()}",
    )
    await drain(platform)


async def test_coupon_lands_in_the_wallet_once(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    created = await create_record(platform, grant(prize["id"], "u-c"))
    assert created is not None
    await drain(platform)
    issued = await record(platform, created.id)
    assert issued.status == "issued" and issued.issued_to == "u-c"
    assert issued.issued_at == platform.clock.now()
    coupons = await platform.reward.get("/v1/me/coupons", headers=platform.user("u-c"))
    (coupon,) = coupons.json()["items"]
    assert coupon["status"] == "unused" and coupon["record_id"] == str(created.id)
    assert coupon["title"]["zh-Hans"] == "行情卡" and coupon["coupon_type"] == "market_data"
    expires = platform.clock.now() + timedelta(days=30)
    assert coupon["expires_at"].startswith(expires.strftime("%Y-%m-%dT%H:%M:%S"))
    detail = await platform.reward.get(
        f"/v1/reward-records/{created.id}", headers=platform.operator()
    )
    assert detail.json()["coupon"]["id"] == coupon["id"]
    await redeliver_issue(platform, created.id)
    assert await count(platform, WalletCoupon) == 1
    assert len(await transitions(platform, created.id)) == 3
    platform.clock.advance(timedelta(days=31))
    later = await platform.reward.get("/v1/me/coupons", headers=platform.user("u-c"))
    assert later.json()["items"][0]["status"] == "expired"


async def test_coupon_with_fixed_dates_takes_them_from_the_template(platform: Platform) -> None:
    prize = await coupon_prize(
        platform,
        validity={"valid_from": "2026-12-01T00:00:00+00:00", "valid_until": "2027-01-01T00:00:00Z"},
    )
    created = await create_record(platform, grant(prize["id"], "u-f"))
    assert created is not None
    await drain(platform)
    async with platform.db("reward").session() as session:
        coupon = await session.scalar(select(WalletCoupon))
    assert coupon is not None
    assert coupon.valid_from is not None and coupon.valid_from.isoformat().startswith("2026-12-01")
    assert coupon.expires_at is not None and coupon.expires_at.isoformat().startswith("2027-01-01")


async def test_physical_prize_opens_a_shipment_and_takes_stock(platform: Platform) -> None:
    prize = await physical_prize(platform, stock=3)
    created = await create_record(platform, grant(prize["id"], "u-p"))
    assert created is not None
    await drain(platform)
    assert (await record(platform, created.id)).status == "issued"
    mine = await platform.reward.get("/v1/me/shipments", headers=platform.user("u-p"))
    (shipment,) = mine.json()["items"]
    assert shipment["status"] == "awaiting_address" and shipment["prize_name"] == "Umbrella"
    assert shipment["record_number"] == created.number
    rewards = await platform.reward.get("/v1/me/rewards", headers=platform.user("u-p"))
    (reward,) = rewards.json()["items"]
    assert reward["shipment_id"] == shipment["id"] and reward["coupon_id"] is None
    detail = await platform.reward.get(
        f"/v1/reward-records/{created.id}", headers=platform.operator()
    )
    assert detail.json()["shipment"]["id"] == shipment["id"]
    await redeliver_issue(platform, created.id)
    async with platform.db("reward").session() as session:
        stock = await session.scalar(select(Prize.stock).where(Prize.id == uuid.UUID(prize["id"])))
    assert stock == 2 and await count(platform, Shipment) == 1


async def test_physical_out_of_stock_fails_with_reason(platform: Platform) -> None:
    prize = await physical_prize(platform, stock=1)
    first = await create_record(platform, grant(prize["id"], "u-1"))
    second = await create_record(platform, grant(prize["id"], "u-2"))
    assert first and second
    await drain(platform)
    # The two issue concurrently; whichever takes the last item first wins it.
    rows = [await record(platform, first.id), await record(platform, second.id)]
    assert sorted(r.status for r in rows) == ["failed", "issued"]
    failed = next(r for r in rows if r.status == "failed")
    assert failed.failure_reason == "out_of_stock"
    got = await platform.reward.get(f"/v1/prizes/{prize['id']}", headers=platform.operator())
    assert got.json()["stock"] == 0


async def test_cash_is_paid_once_with_the_record_number_as_key(
    platform: Platform, cash: CashSystem
) -> None:
    await use_cash_endpoint(platform, CASH_PAYMENTS_URL)
    prize = await cash_prize(platform, "100.00")
    created = await create_record(platform, grant(prize["id"], "u-cash"))
    assert created is not None
    await drain(platform)
    issued = await record(platform, created.id)
    assert issued.status == "issued" and issued.issued_to == "u-cash-HKD"
    (payment,) = await cash.payments()
    assert payment.idempotency_key == created.number and payment.user_id == "u-cash"
    assert payment.amount == Decimal("100") and payment.currency == "HKD"
    async with platform.db("reward").session() as session:
        payout = await session.scalar(select(CashPayout))
    assert payout is not None and payout.status == "paid"
    assert payout.payment_id == str(payment.id) and payout.attempts == 1
    detail = await platform.reward.get(
        f"/v1/reward-records/{created.id}", headers=platform.operator()
    )
    shown = detail.json()["payout"]
    assert shown["status"] == "paid" and shown["payment_id"] == str(payment.id)
    assert shown["amount"] == "100.000000" and detail.json()["coupon"] is None
    await redeliver_issue(platform, created.id)
    assert await cash.count() == 1


@pytest.mark.parametrize(
    ("amount", "user", "reason"),
    [
        ("6000.00", "u-rich", "cash_refused:amount_over_limit"),
        ("10.00", BLOCKED_USER, "cash_refused:account_blocked"),
    ],
)
async def test_cash_definite_refusal_fails_the_record(
    platform: Platform, cash: CashSystem, amount: str, user: str, reason: str
) -> None:
    await use_cash_endpoint(platform, CASH_PAYMENTS_URL)
    prize = await cash_prize(platform, amount)
    created = await create_record(platform, grant(prize["id"], user))
    assert created is not None
    await drain(platform)
    failed = await record(platform, created.id)
    assert failed.status == "failed" and failed.failure_reason == reason
    assert await cash.count() == 0
    listed = await platform.reward.get(
        "/v1/reward-records", params={"status": "failed"}, headers=platform.operator()
    )
    assert listed.json()["items"][0]["failure_reason"] == reason


async def test_cash_transient_errors_are_retried_until_paid(
    platform: Platform, cash: CashSystem
) -> None:
    await use_cash_endpoint(platform, CASH_PAYMENTS_URL)
    prize = await cash_prize(platform)
    created = await create_record(platform, grant(prize["id"], "u-t"))
    assert created is not None
    cash.unavailable_next(3)
    await drain(platform)
    assert (await record(platform, created.id)).status == "issued"
    async with platform.db("reward").session() as session:
        payout = await session.scalar(select(CashPayout))
    assert payout is not None and payout.attempts == 4 and payout.status == "paid"
    assert await cash.count() == 1


async def test_cash_answer_lost_after_payment_does_not_pay_twice(
    platform: Platform, cash: CashSystem
) -> None:
    await use_cash_endpoint(platform, CASH_PAYMENTS_URL)
    prize = await cash_prize(platform)
    created = await create_record(platform, grant(prize["id"], "u-l"))
    assert created is not None
    cash.lose_next_answers(2)
    await drain(platform)
    assert (await record(platform, created.id)).status == "issued"
    assert await cash.count() == 1
    async with platform.db("reward").session() as session:
        payout = await session.scalar(select(CashPayout))
    assert payout is not None and payout.attempts == 3


async def test_cash_without_an_endpoint_fails_and_default_setting_is_used(
    platform: Platform, cash: CashSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    prize = await cash_prize(platform)
    created = await create_record(platform, grant(prize["id"], "u-n"))
    assert created is not None
    await drain(platform)
    failed = await record(platform, created.id)
    assert failed.failure_reason == "cash_endpoint_not_configured"
    shown = await platform.reward.get("/v1/payout-endpoint", headers=platform.operator())
    assert shown.json() == {
        "url": None,
        "source": "none",
        "signed": False,
        "signing_secret": None,
        "updated_by": None,
        "updated_at": None,
    }
    monkeypatch.setattr(platform.settings["reward"], "default_cash_endpoint_url", CASH_PAYMENTS_URL)
    resubmitted = await platform.reward.post(
        f"/v1/reward-records/{created.id}/resubmit", headers=platform.operator()
    )
    assert resubmitted.status_code == 200
    await drain(platform)
    assert (await record(platform, created.id)).status == "issued"
    assert await cash.count() == 1


async def test_payout_endpoint_needs_rights_and_a_url(platform: Platform) -> None:
    bad = await platform.reward.put(
        "/v1/payout-endpoint", json={"url": "not a url"}, headers=platform.operator()
    )
    assert bad.status_code == 422
    denied = await platform.reward.put(
        "/v1/payout-endpoint",
        json={"url": CASH_PAYMENTS_URL},
        headers=platform.operator(permissions=["RightsSystemRead"]),
    )
    assert denied.status_code == 403
    await use_cash_endpoint(platform, CASH_PAYMENTS_URL)
    shown = await platform.reward.get("/v1/payout-endpoint", headers=platform.operator())
    assert shown.json()["source"] == "tenant" and shown.json()["updated_by"] == "operator:ops-1"
    other = await platform.reward.get("/v1/payout-endpoint", headers=platform.operator("tenant-b"))
    assert other.json()["source"] == "none"


async def test_a_retry_pays_the_pinned_terms_and_a_refusal_takes_new_ones(
    platform: Platform, cash: CashSystem
) -> None:
    await use_cash_endpoint(platform, CASH_PAYMENTS_URL)
    prize = await cash_prize(platform, "100.00")
    pinned = await create_record(platform, grant(prize["id"], "u-pin"))
    assert pinned is not None
    # First attempt: paid, answer lost; then the amount is edited before the retry.
    cash.lose_next_answers(1)
    ctx_settings = platform.settings["reward"]
    http = ServiceClient(ctx_settings, mounts=platform.mounts)
    ctx = {
        "db": platform.db("reward"),
        "settings": ctx_settings,
        "clock": platform.clock,
        "clocks": platform.job_clocks("reward"),
        "http": http,
    }
    try:
        with pytest.raises(TransientFulfilmentError):
            await issue_record(ctx, pinned.id)
    finally:
        await http.aclose()
    edited = await platform.reward.patch(
        f"/v1/prizes/{prize['id']}",
        json={"amount": "250.00"},
        headers={**platform.operator(), "If-Match": '"1"'},
    )
    assert edited.status_code == 200 and edited.json()["details"]["amount"] == "250.00"
    await drain(platform)
    assert (await record(platform, pinned.id)).status == "issued"
    (payment,) = await cash.payments()
    assert payment.amount == Decimal("100")

    big = await cash_prize(platform, "9000.00")
    refused = await create_record(platform, grant(big["id"], "u-big"))
    assert refused is not None
    await drain(platform)
    assert (await record(platform, refused.id)).status == "failed"
    await platform.reward.patch(
        f"/v1/prizes/{big['id']}",
        json={"amount": "4000.00"},
        headers={**platform.operator(), "If-Match": '"1"'},
    )
    resubmitted = await platform.reward.post(
        f"/v1/reward-records/{refused.id}/resubmit", headers=platform.operator()
    )
    assert resubmitted.status_code == 200
    await drain(platform)
    assert (await record(platform, refused.id)).status == "issued"
    amounts = sorted(p.amount for p in await cash.payments())
    assert amounts == [Decimal("100"), Decimal("4000")]
