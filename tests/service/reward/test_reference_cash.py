"""The reference cash system keeps the contract every tenant cash system must keep: one
payment per idempotency key, the same answer on a replay, clear refusals."""

from __future__ import annotations

from decimal import Decimal

from tests.service.reward.conftest import BLOCKED_USER, CashSystem
from tests.service.reward.helpers import client

BODY = {
    "reference": "RR-20261123-00000001",
    "tenant_id": "tenant-a",
    "user_id": "u-1",
    "amount": "100.00",
    "currency": "HKD",
}


async def test_one_payment_per_key_and_the_same_answer_on_replay(cash: CashSystem) -> None:
    async with client(cash.app, "http://cash.test") as http:
        key = {"Idempotency-Key": BODY["reference"]}
        first = await http.post("/v1/payments", json=BODY, headers=key)
        again = await http.post("/v1/payments", json=BODY, headers=key)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json() == again.json()
        assert first.json()["amount"] == "100"
        different = await http.post("/v1/payments", json={**BODY, "amount": "101.00"}, headers=key)
        assert different.status_code == 422
        assert different.json()["code"] == "idempotency_key_reused"
        fetched = await http.get(f"/v1/payments/{BODY['reference']}")
        assert fetched.json()["payment_id"] == first.json()["payment_id"]
    (payment,) = await cash.payments()
    assert payment.amount == Decimal("100")


async def test_refusals_and_missing_key(cash: CashSystem) -> None:
    async with client(cash.app, "http://cash.test") as http:
        no_key = await http.post("/v1/payments", json=BODY)
        assert no_key.status_code == 422 and no_key.json()["code"] == "idempotency_key_required"
        blocked = await http.post(
            "/v1/payments",
            json={**BODY, "user_id": BLOCKED_USER},
            headers={"Idempotency-Key": "k-2"},
        )
        assert blocked.status_code == 422 and blocked.json()["code"] == "account_blocked"
        over = await http.post(
            "/v1/payments",
            json={**BODY, "amount": "5000.01"},
            headers={"Idempotency-Key": "k-3"},
        )
        assert over.status_code == 422 and over.json()["code"] == "amount_over_limit"
        cash.unavailable_next(1)
        down = await http.post("/v1/payments", json=BODY, headers={"Idempotency-Key": "k-4"})
        assert down.status_code == 503
    assert await cash.count() == 0
