from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from reward_service.wallet import service
from reward_service.wallet.repository import WalletRepository
from reward_service.wallet.schemas import CouponRead
from service_kit.auth import RIGHTS_READ, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES, Unprocessable
from service_kit.pagination import Page, PageParamsDep

router = APIRouter(tags=["wallet"], responses=PROBLEM_RESPONSES)

AppUser = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.user}))]
RightsReader = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=RIGHTS_READ))
]


@router.get("/v1/me/coupons", summary="My coupons")
async def list_my_coupons(
    principal: AppUser, session: SessionDep, clock: ClockDep, page: PageParamsDep
) -> Page[CouponRead]:
    rows, cursor = await WalletRepository.from_session(session).list(
        principal.tenant_id, page, user_id=principal.sub
    )
    now = clock.now()
    return Page(items=[service.to_read(c, now) for c in rows], next_cursor=cursor)


@router.post("/v1/me/coupons/{coupon_id}/use", summary="Mark one of my coupons used")
async def use_my_coupon(
    coupon_id: uuid.UUID, principal: AppUser, session: SessionDep, clock: ClockDep
) -> CouponRead:
    coupon = await service.use_coupon(
        session, principal.tenant_id, principal.sub, coupon_id, clock.now()
    )
    return service.to_read(coupon, clock.now())


@router.get("/v1/coupons", summary="Find a customer's coupons")
async def list_customer_coupons(
    principal: RightsReader,
    session: SessionDep,
    clock: ClockDep,
    page: PageParamsDep,
    user_id: Annotated[str | None, Query(description="Customer id")] = None,
    phone: Annotated[str | None, Query(description="Customer phone number")] = None,
) -> Page[CouponRead]:
    if not user_id and not phone:
        raise Unprocessable("Give user_id or phone.", code="customer_required")
    rows, cursor = await WalletRepository.from_session(session).list(
        principal.tenant_id, page, user_id=user_id, phone=phone
    )
    now = clock.now()
    return Page(items=[service.to_read(c, now) for c in rows], next_cursor=cursor)
