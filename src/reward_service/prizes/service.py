from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.prizes.models import Prize
from reward_service.prizes.repository import PrizeRepository
from reward_service.prizes.schemas import (
    CASH_FIELDS,
    COUPON_FIELDS,
    PHYSICAL_FIELDS,
    CashPrizeCreate,
    CouponPrizeCreate,
    PhysicalPrizeCreate,
    PrizeUpdate,
)
from reward_service.prizes.usage import RuleUsage
from service_kit.auth import Principal
from service_kit.errors import Conflict, NotFound, Unprocessable
from service_kit.preconditions import PreconditionRequired, VersionMismatch, check_version


def _cost(body: CouponPrizeCreate | PhysicalPrizeCreate) -> tuple[object, str | None]:
    if (body.cost_amount is None) != (body.cost_currency is None):
        raise Unprocessable(
            "cost_amount and cost_currency go together.", code="cost_currency_required"
        )
    return body.cost_amount, body.cost_currency


async def create_prize(
    session: AsyncSession,
    principal: Principal,
    body: CouponPrizeCreate | PhysicalPrizeCreate | CashPrizeCreate,
) -> Prize:
    data = body.model_dump(mode="json", by_alias=True, exclude={"type", "name"})
    stock = None
    cost_amount: object = None
    cost_currency: str | None = None
    if isinstance(body, CashPrizeCreate):
        cost_amount, cost_currency = body.amount, body.currency
    else:
        cost_amount, cost_currency = _cost(body)
        data.pop("cost_amount", None)
        data.pop("cost_currency", None)
    if isinstance(body, PhysicalPrizeCreate):
        stock = data.pop("stock")
    if data.get("title") is None:
        data.pop("title", None)
    prize = Prize(
        id=uuid.uuid4(),
        tenant_id=principal.tenant_id,
        type=body.type,
        name=body.name,
        details=data,
        stock=stock,
        cost_amount=cost_amount,
        cost_currency=cost_currency,
        created_by=principal.actor,
    )
    PrizeRepository.from_session(session).add(prize)
    await session.flush()
    await session.refresh(prize)
    return prize


async def get_prize(session: AsyncSession, tenant_id: str, prize_id: uuid.UUID) -> Prize:
    prize = await PrizeRepository.from_session(session).get(tenant_id, prize_id)
    if prize is None:
        raise NotFound(f"No prize {prize_id} in this tenant.", code="prize_not_found")
    return prize


FIELDS_BY_TYPE = {
    "coupon": COUPON_FIELDS | {"cost_amount", "cost_currency"},
    "physical": PHYSICAL_FIELDS | {"cost_amount", "cost_currency"},
    "cash": CASH_FIELDS,
}


async def update_prize(
    session: AsyncSession,
    tenant_id: str,
    prize_id: uuid.UUID,
    body: PrizeUpdate,
    if_match: int | None,
    now: datetime,
) -> Prize:
    """Apply an operator's edit made on version ``if_match`` of the prize (412 otherwise).
    The version guards the prize's definition: an edit that only adjusts the live stock by
    ``stock_delta`` composes with any other change, so it needs no If-Match and leaves the
    version as it is (like items taken by issuing)."""
    prize = await get_prize(session, tenant_id, prize_id)
    sent = body.model_dump(exclude_unset=True, mode="json", by_alias=True)
    sent = {k: v for k, v in sent.items() if v is not None}
    stock_only = set(sent) == {"stock_delta"}
    if if_match is not None:
        check_version(prize.version, if_match, "prize")
    elif not stock_only:
        raise PreconditionRequired(
            "Send If-Match with the ETag of the prize you edited (GET returns it); only a "
            "stock_delta alone may go without."
        )
    allowed = FIELDS_BY_TYPE[prize.type] | {"name"}
    wrong = sorted(set(sent) - allowed)
    if wrong:
        raise Unprocessable(
            f"A {prize.type} prize has no field {', '.join(wrong)}.",
            code="field_not_applicable",
            fields=wrong,
        )
    repo = PrizeRepository.from_session(session)
    values: dict[str, Any] = {"updated_at": now}
    if "name" in sent:
        values["name"] = sent.pop("name")
    if "stock" in sent:
        values["stock"] = sent.pop("stock")
    delta = sent.pop("stock_delta", None)
    if prize.type == "cash":
        if "amount" in sent:
            values["cost_amount"] = body.amount
        if "currency" in sent:
            values["cost_currency"] = body.currency
    else:
        cost_amount = sent.pop("cost_amount", None)
        cost_currency = sent.pop("cost_currency", None)
        if cost_amount is not None or cost_currency is not None:
            amount = body.cost_amount if cost_amount is not None else prize.cost_amount
            currency = body.cost_currency if cost_currency is not None else prize.cost_currency
            if (amount is None) != (currency is None):
                raise Unprocessable(
                    "cost_amount and cost_currency go together.", code="cost_currency_required"
                )
            values["cost_amount"], values["cost_currency"] = amount, currency
    if sent:
        values["details"] = {**prize.details, **sent}
    if not stock_only and await repo.update_if_version(prize.id, prize.version, values) is None:
        raise VersionMismatch("Another edit of the prize was saved meanwhile; reload and retry.")
    if delta is not None and await repo.adjust_stock(prize.id, delta, now) is None:
        raise Conflict(
            f"Stock is {prize.stock}; adjusting it by {delta} would go below zero.",
            code="stock_would_be_negative",
        )
    fresh = await repo.refresh(prize.id)
    assert fresh is not None
    return fresh


async def delete_prize(
    session: AsyncSession,
    tenant_id: str,
    prize_id: uuid.UUID,
    rule_usage: RuleUsage,
    if_match: int | None = None,
) -> None:
    """Delete a prize no activity rule, reward record or manual issuance uses; otherwise
    409 ``prize_in_use`` saying what uses it. The row is locked first, so a stock change or
    an edit waits for the deletion. Activity rules are asked of the activity service (503
    ``prize_usage_unknown`` if it cannot answer); once deleted, no new rule can name the
    prize, since activity configuration checks every prize id here."""
    repo = PrizeRepository.from_session(session)
    prize = await repo.lock(tenant_id, prize_id)
    if prize is None:
        raise NotFound(f"No prize {prize_id} in this tenant.", code="prize_not_found")
    if if_match is not None:
        check_version(prize.version, if_match, "prize")
    here = await repo.used_by(tenant_id, prize_id)
    activities = [] if here else await rule_usage(prize_id)
    if here or activities:
        what = ", ".join(
            [*(f"activity {code}" for code in activities), *(t.replace("_", " ") for t in here)]
        )
        raise Conflict(
            f"The prize is in use ({what}); it can be deleted only when nothing refers to it.",
            code="prize_in_use",
            activity_codes=activities,
            used_by=here,
        )
    await repo.delete(prize.id)
