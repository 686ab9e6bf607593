"""Cash fulfilment (SPEC §3.7): pay a cash reward through the tenant's cash system.

Why no transaction is held across the HTTP call, and why that is still "never twice":
the payment carries the record number as its idempotency key, and the cash system keeps
one payment per key (a replay answers with the same payment). So the call can be repeated
any number of times — by arq re-running a killed job, by the reconciler's re-drive, by a
retry after a timeout whose request did arrive — and the user is paid once. Our side
then moves the record Issuing → Issued by compare-and-set; concurrent runs of the same
issuance agree on the same payment and only one of them records the transition.

Every call is signed (``X-Platform-Signature``, ``service_kit.signing``) with the tenant's
signing secret (the deployment's for the default cash system), and a tenant's URL is
checked against the outbound policy before every call (``service_kit.outbound``): one
that now points inward fails the record as ``cash_endpoint_not_allowed``.

Only a definite refusal (a 4xx answer) fails the record. A timeout, a connection error or a
5xx leaves it Issuing and is retried: the money may have moved, so giving up and letting
an operator cancel would be wrong, while retrying with the same key is always safe.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
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
from service_kit.outbound import OutboundPolicy, UrlNotAllowed
from service_kit.signing import SIGNATURE_HEADER, new_secret, sign

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


async def configure_endpoint(
    session: AsyncSession,
    outbound: OutboundPolicy,
    tenant_id: str,
    url: str,
    signing_secret: str | None,
    actor: str,
    at: datetime,
) -> str | None:
    """Set the tenant's cash system; returns the signing secret when one was generated
    (no secret given and none in place), to be shown once. 422 ``url_not_allowed`` for a
    URL the platform may not call."""
    await outbound.check(url)
    repo = PayoutRepository.from_session(session)
    generated = None
    if signing_secret is None:
        current = await repo.endpoint(tenant_id)
        if current is None or current.signing_secret is None:
            generated = signing_secret = new_secret()
    await repo.put_endpoint(tenant_id, url, signing_secret, actor, at)
    return generated


@dataclass(frozen=True)
class CashTarget:
    url: str
    signing_secret: str | None
    # Set by an operator (checked before every call), not by the deployment.
    operator_set: bool


async def cash_target(
    session: AsyncSession, tenant_id: str, settings: RewardSettings, url: str
) -> CashTarget:
    """How to call ``url`` (a payout's pinned cash system) for the tenant."""
    configured = await PayoutRepository.from_session(session).endpoint(tenant_id)
    if url == settings.default_cash_endpoint_url and (configured is None or configured.url != url):
        return CashTarget(url, settings.default_cash_signing_secret or None, operator_set=False)
    secret = configured.signing_secret if configured is not None else None
    return CashTarget(url, secret, operator_set=True)


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
    http: ServiceClient, target: CashTarget, request: CashPaymentRequest, timeout: float
) -> PaymentOutcome:
    """One signed call to the cash system; classifies the answer."""
    if target.operator_set:
        try:
            await http.outbound.check(target.url)
        except UrlNotAllowed:
            return PaymentOutcome(paid=False, refused=True, detail="cash_endpoint_not_allowed")
    body = json.dumps(request.model_dump(mode="json"), separators=(",", ":")).encode()
    headers = {"Idempotency-Key": request.reference, "Content-Type": "application/json"}
    if target.signing_secret:
        headers[SIGNATURE_HEADER] = sign(target.signing_secret, body, int(time.time()))
    try:
        response = await http.post(target.url, content=body, headers=headers, timeout=timeout)
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
        target = await cash_target(session, record.tenant_id, settings, url)

    outcome = await pay(http, target, request, settings.cash_timeout_seconds)

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
