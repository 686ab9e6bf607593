from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.prizes.models import Prize
from reward_service.prizes.repository import PrizeRepository
from reward_service.prizes.schemas import CashPrizeCreate, CouponPrizeCreate, PhysicalPrizeCreate
from service_kit.auth import Principal
from service_kit.errors import NotFound, Unprocessable


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
