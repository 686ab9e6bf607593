"""Cash fulfilment (SPEC §3.7): pay a cash reward through the tenant's cash system.

Why no transaction is held across the HTTP call, and why that is still "never twice":
the payment carries the record number as its idempotency key, and the cash system keeps
one payment per key (a replay answers with the same payment). So the call can be repeated
any number of times — by arq re-running a killed job, by the reconciler's re-drive, by a
retry after a timeout whose request did arrive — and the user is paid once. Our side
then moves the record Issuing → Issued by compare-and-set; concurrent runs of the same
issuance agree on the same payment and only one of them records the transition.

Only a definite refusal (a 4xx answer) fails the record. A timeout, a connection error or a
5xx leaves it Issuing and is retried: the money may have moved, so giving up and letting
an operator cancel would be wrong, while retrying with the same key is always safe.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.config import RewardSettings
from reward_service.payouts.repository import PayoutRepository
from reward_service.payouts.schemas import CashPaymentRequest
from reward_service.prizes.repository import PrizeRepository
from reward_service.records.fulfilment import TransientFulfilmentError
from reward_service.records.models import RewardRecord
from reward_service.records.repository import RecordRepository
from reward_service.records.service import fail, mark_issued
from reward_service.records.state import RecordStatus
from service_kit.clock import Clock
from service_kit.db import Database
from service_kit.http import ServiceClient

log = logging.getLogger(__name__)

TRANSIENT_STATUS = {408, 425, 429}


@dataclass(frozen=True)
class PaymentOutcome:
    paid: bool
    refused: bool
    payment_id: str | None = None
    account_id: str | None = None
    detail: str | None = None


async def endpoint_url(
    session: AsyncSession, tenant_id: str, settings: RewardSettings
) -> tuple[str | None, str]:
    configured = await PayoutRepository.from_session(session).endpoint(tenant_id)
    if configured is not None:
        return configured.url, "tenant"
    if settings.default_cash_endpoint_url:
        return settings.default_cash_endpoint_url, "default"
    return None, "none"


def _refusal_reason(response: httpx.Response) -> str:
    code = None
    try:
        body = response.json()
        if isinstance(body, dict):
            code = body.get("code") or body.get("reason")
    except ValueError:
        pass
    return f"cash_refused:{code or response.status_code}"[:500]


async def pay(
    http: ServiceClient, url: str, request: CashPaymentRequest, timeout: float
) -> PaymentOutcome:
    """One call to the cash system; classifies the answer."""
    try:
        response = await http.post(
            url,
            json=request.model_dump(mode="json"),
            headers={"Idempotency-Key": request.reference},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        return PaymentOutcome(paid=False, refused=False, detail=f"unreachable: {exc!r}"[:500])
    if 200 <= response.status_code < 300:
        payment_id = account_id = None
        try:
            body = response.json()
            if isinstance(body, dict):
                payment_id = body.get("payment_id") or body.get("id")
                account_id = body.get("account_id") or body.get("account")
        except ValueError:
            pass
        return PaymentOutcome(
            paid=True,
            refused=False,
            payment_id=str(payment_id) if payment_id else None,
            account_id=str(account_id)[:128] if account_id else None,
        )
    if 400 <= response.status_code < 500 and response.status_code not in TRANSIENT_STATUS:
        return PaymentOutcome(paid=False, refused=True, detail=_refusal_reason(response))
    return PaymentOutcome(
        paid=False, refused=False, detail=f"cash system answered {response.status_code}"
    )


def _amount(details: dict[str, object]) -> tuple[Decimal, str]:
    return Decimal(str(details["amount"])), str(details["currency"])


async def issue_cash(
    db: Database,
    http: ServiceClient,
    settings: RewardSettings,
    record_id: uuid.UUID,
    clock: Clock,
) -> RewardRecord | None:
    """Issuing → Issued / Failed for a cash record, in three steps: note the request (short
    transaction), call the cash system (no transaction), record the outcome (short
    transaction). Raises TransientFulfilmentError when the call should be retried."""
    async with db.session() as session:
        record = await RecordRepository.from_session(session).get_by_id(record_id)
        if record is None or record.status != RecordStatus.issuing.value:
            return None
        prize = await PrizeRepository.from_session(session).get(record.tenant_id, record.prize_id)
        if prize is None:
            return await fail(session, record, "prize_missing", clock.now())
        url, _ = await endpoint_url(session, record.tenant_id, settings)
        if url is None:
            return await fail(session, record, "cash_endpoint_not_configured", clock.now())
        amount, currency = _amount(prize.details)
        payout = await PayoutRepository.from_session(session).note_request(
            {
                "id": uuid.uuid4(),
                "tenant_id": record.tenant_id,
                "record_id": record.id,
                "record_number": record.number,
                "user_id": record.user_id,
                "amount": amount,
                "currency": currency,
                "status": "requested",
                "endpoint_url": url,
            },
            clock.now(),
        )
        # The pinned terms, not the prize's current ones (see note_request).
        url = payout.endpoint_url or url
        request = CashPaymentRequest(
            reference=record.number,
            tenant_id=record.tenant_id,
            user_id=record.user_id,
            amount=format(Decimal(payout.amount), "f"),
            currency=payout.currency,
            record_id=str(record.id),
        )

    outcome = await pay(http, url, request, settings.cash_timeout_seconds)

    async with db.session() as session:
        now = clock.now()
        payouts = PayoutRepository.from_session(session)
        record = await RecordRepository.from_session(session).get_by_id(record_id)
        if record is None:
            return None
        if outcome.paid:
            await payouts.note_outcome(
                record_id,
                {
                    "status": "paid",
                    "payment_id": outcome.payment_id,
                    "account_id": outcome.account_id,
                    "last_error": None,
                    "updated_at": now,
                },
            )
            if record.status != RecordStatus.issuing.value:
                return None
            # 发放账户: the account actually paid, when the cash system names it.
            return await mark_issued(session, record, now, issued_to=outcome.account_id)
        if outcome.refused:
            await payouts.note_outcome(
                record_id, {"status": "refused", "last_error": outcome.detail, "updated_at": now}
            )
            if record.status != RecordStatus.issuing.value:
                return None
            return await fail(session, record, outcome.detail or "cash_refused", now)
        await payouts.note_outcome(record_id, {"last_error": outcome.detail, "updated_at": now})
    log.warning("cash payout of %s not completed: %s", request.reference, outcome.detail)
    raise TransientFulfilmentError(outcome.detail or "cash system unavailable")
