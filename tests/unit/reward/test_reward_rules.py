"""Pure reward rules: coupon validity windows, record numbers, CSV cells, retry backoff,
lock-up break reasons, and how a cash system's answer is classified."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from contracts.payloads import LockCheckAnswer
from reward_service.config import RewardSettings
from reward_service.exports import cell, csv_line
from reward_service.payouts.schemas import CashPaymentRequest
from reward_service.payouts.service import CashTarget, pay
from reward_service.prizes.models import Prize
from reward_service.records.models import RewardRecord
from reward_service.records.reconciler import break_reason
from reward_service.records.service import format_number
from reward_service.records.tasks import retry_delay
from reward_service.wallet.service import coupon_window
from service_kit.http import ServiceClient
from service_kit.signing import SIGNATURE_HEADER, verify

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def prize(details: dict[str, Any]) -> Prize:
    return Prize(id=uuid.uuid4(), tenant_id="t", type="coupon", name="c", details=details)


def test_coupon_window_days_from_issue() -> None:
    start, end = coupon_window(prize({"validity": {"days_from_issue": 30}}), NOW)
    assert start == NOW and end == NOW + timedelta(days=30)


def test_coupon_window_fixed_dates() -> None:
    validity = {"valid_from": "2026-12-01T00:00:00+00:00", "valid_until": "2027-01-01T00:00:00Z"}
    start, end = coupon_window(prize({"validity": validity}), NOW)
    assert start == datetime(2026, 12, 1, tzinfo=UTC)
    assert end == datetime(2027, 1, 1, tzinfo=UTC)


def test_record_numbers_are_human_friendly_and_sortable() -> None:
    assert format_number(42, NOW) == "RR-20261123-00000042"
    assert format_number(9, NOW) < format_number(10, NOW)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, ""),
        ("=SUM(A1)", "'=SUM(A1)"),
        ("@cmd", "'@cmd"),
        ("+852 9123", "'+852 9123"),
        ("-12.5", "-12.5"),
        (Decimal("100.000000"), "100.000000"),
        (True, "true"),
        (NOW, "2026-11-23T02:00:00+00:00"),
        ("Queen's Road", "Queen's Road"),
    ],
)
def test_csv_cells_never_run_as_formulas(value: Any, shown: str) -> None:
    assert cell(value) == shown


def test_csv_line_quotes_commas() -> None:
    assert csv_line(["a,b", 'say "hi"']) == '"a,b","say ""hi"""\r\n'


def test_retry_backoff_doubles_and_caps() -> None:
    assert [retry_delay(1.0, t) for t in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert retry_delay(1.0, 20) == 30.0
    assert retry_delay(0.5, 0) == 0.5


def locked_record() -> RewardRecord:
    return RewardRecord(lock_amount=Decimal("10000"), lock_currency="HKD", lock_days=30)


def test_break_reason_prefers_the_answer_and_else_explains() -> None:
    answer = LockCheckAnswer(held=False, min_position=None, reason="withdrew 5000 HKD")
    assert break_reason(locked_record(), answer) == "lock_broken: withdrew 5000 HKD"
    bare = LockCheckAnswer(held=False, min_position=Decimal("2500"), reason=None)
    assert break_reason(locked_record(), bare) == (
        "lock_broken: 10000 HKD not kept for 30 days; lowest position 2500"
    )


REQUEST = CashPaymentRequest(
    reference="RR-20261123-00000001",
    tenant_id="t",
    user_id="u",
    amount="100.00",
    currency="HKD",
    record_id=str(uuid.uuid4()),
)


SECRET = "unit-test-signing-secret-0123456789"


async def answer_with(response: httpx.Response | Exception) -> Any:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(response, Exception):
            raise response
        return response

    client = ServiceClient(
        RewardSettings(), mounts={"http://cash.unit": httpx.MockTransport(handler)}
    )
    try:
        target = CashTarget("http://cash.unit/v1/payments", SECRET, operator_set=False)
        outcome = await pay(client, target, REQUEST, 1.0)
    finally:
        await client.aclose()
    return outcome, seen


async def test_paid_answer_carries_the_payment_id_and_key_header() -> None:
    outcome, seen = await answer_with(httpx.Response(201, json={"payment_id": "p-1"}))
    assert outcome.paid and outcome.payment_id == "p-1"
    assert seen[0].headers["Idempotency-Key"] == REQUEST.reference
    # Signed over the exact bytes sent.
    signature = seen[0].headers[SIGNATURE_HEADER]
    assert verify(SECRET, seen[0].content, signature, time.time())
    assert not verify("another-secret-of-32-characters!!", seen[0].content, signature, time.time())


@pytest.mark.parametrize("status", [400, 403, 409, 422])
async def test_client_errors_are_definite_refusals(status: int) -> None:
    outcome, _ = await answer_with(httpx.Response(status, json={"code": "amount_over_limit"}))
    assert outcome.refused and not outcome.paid
    assert outcome.detail == "cash_refused:amount_over_limit"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_server_errors_and_throttling_are_transient(status: int) -> None:
    outcome, _ = await answer_with(httpx.Response(status))
    assert not outcome.paid and not outcome.refused


async def test_timeouts_and_connection_errors_are_transient() -> None:
    for error in (httpx.ReadTimeout("slow"), httpx.ConnectError("down")):
        outcome, _ = await answer_with(error)
        assert not outcome.paid and not outcome.refused
