from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.profiles.rules import normalize_phone
from reward_service.wallet import service
from reward_service.wallet.models import WalletCoupon
from reward_service.wallet.repository import WalletRepository
from reward_service.wallet.schemas import CouponRead, CouponUse
from service_kit.auth import RIGHTS_READ, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES, Unprocessable, problems
from service_kit.i18n import AcceptLanguage, say_served, served_for
from service_kit.idempotency import IdempotencyDep
from service_kit.pagination import Page, PageParamsDep
from service_kit.routing import ServiceRoute

router = APIRouter(route_class=ServiceRoute, tags=["wallet"], responses=PROBLEM_RESPONSES)

# Using a coupon: none such, or refused as it stands (changing nothing).
USE_PROBLEMS = problems(
    {
        404: ["coupon_not_found"],
        409: {
            "coupon_used": "the coupon was used already",
            "coupon_expired": "the coupon's validity has ended",
            "coupon_not_yet_valid": "the coupon's validity has not begun",
        },
    }
)

AppUser = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.user}))]
RightsReader = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=RIGHTS_READ))
]
# Broker systems read a coupon's status, as operators do.
CouponReader = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=RIGHTS_READ)
    ),
]
# Marking a coupon used belongs to the broker's systems (and the app user, above).
CouponRedeemer = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.service}))]
CouponCode = Annotated[str, Path(min_length=1, max_length=40, examples=["7KQ2M9XDHR4P"])]


@router.get("/v1/me/coupons", summary="My coupons", responses=problems({422: ["invalid_cursor"]}))
async def list_my_coupons(
    principal: AppUser,
    session: SessionDep,
    clock: ClockDep,
    page: PageParamsDep,
    response: Response,
    accept_language: AcceptLanguage = None,
) -> Page[CouponRead]:
    """Titles and activity names follow Accept-Language (as `/v1/me/rewards`)."""
    rows, cursor = await WalletRepository.from_session(session).list(
        principal.tenant_id, page, user_id=principal.sub
    )
    served = served_for(accept_language)
    items = await service.read_coupons(session, rows, clock.now(), served)
    say_served(response, served)
    return Page(items=items, next_cursor=cursor)


@router.post(
    "/v1/me/coupons/{coupon_id}/use", summary="Mark one of my coupons used", responses=USE_PROBLEMS
)
async def use_my_coupon(
    coupon_id: uuid.UUID,
    principal: AppUser,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
    body: CouponUse | None = None,
    accept_language: AcceptLanguage = None,
) -> CouponRead:
    """Sending it again (same reference, or none both times) answers the same."""
    now = clock.now()
    coupon = await service.use_my_coupon(
        session,
        principal.tenant_id,
        principal.sub,
        coupon_id,
        principal.actor,
        body.reference if body else None,
        now,
    )
    return await _read(session, coupon, now, response, accept_language)


async def _read(
    session: AsyncSession,
    coupon: WalletCoupon,
    now: datetime,
    response: Response,
    accept_language: str | None,
) -> CouponRead:
    served = served_for(accept_language)
    (read,) = await service.read_coupons(session, [coupon], now, served)
    say_served(response, served)
    return read


USE_DOC = (
    "For the broker's own systems (a service token), e.g. the point where a commission-free "
    "card is applied. Idempotent: the same caller with the same `reference` (or none both "
    "times) gets the same answer again. A coupon used by anyone else, or by this caller "
    "under another reference, is `409 coupon_used`; past its validity `409 coupon_expired`; "
    "before its validity `409 coupon_not_yet_valid`."
)


@router.get(
    "/v1/coupons/by-code/{code}",
    summary="A coupon and its status, by code",
    responses=problems({404: ["coupon_not_found"]}),
)
async def get_coupon_by_code(
    code: CouponCode,
    principal: CouponReader,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
    accept_language: AcceptLanguage = None,
) -> CouponRead:
    """`status` is `expired` once the validity has ended, whatever was stored."""
    coupon = await service.find_coupon(session, principal.tenant_id, code=code)
    return await _read(session, coupon, clock.now(), response, accept_language)


@router.post(
    "/v1/coupons/by-code/{code}/use",
    summary="Mark a coupon used, by code",
    description=USE_DOC,
    responses=USE_PROBLEMS,
)
async def use_coupon_by_code(
    code: CouponCode,
    principal: CouponRedeemer,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
    body: CouponUse | None = None,
    accept_language: AcceptLanguage = None,
) -> CouponRead:
    now = clock.now()
    coupon = await service.find_coupon(session, principal.tenant_id, code=code)
    used = await service.use_coupon(
        session, coupon, principal.actor, body.reference if body else None, now
    )
    return await _read(session, used, now, response, accept_language)


@router.get(
    "/v1/coupons/{coupon_id}",
    summary="A coupon and its status",
    responses=problems({404: ["coupon_not_found"]}),
)
async def get_coupon(
    coupon_id: uuid.UUID,
    principal: CouponReader,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
    accept_language: AcceptLanguage = None,
) -> CouponRead:
    """`status` is `expired` once the validity has ended, whatever was stored."""
    coupon = await service.find_coupon(session, principal.tenant_id, coupon_id=coupon_id)
    return await _read(session, coupon, clock.now(), response, accept_language)


@router.post(
    "/v1/coupons/{coupon_id}/use",
    summary="Mark a coupon used",
    description=USE_DOC,
    responses=USE_PROBLEMS,
)
async def use_coupon(
    coupon_id: uuid.UUID,
    principal: CouponRedeemer,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
    body: CouponUse | None = None,
    accept_language: AcceptLanguage = None,
) -> CouponRead:
    now = clock.now()
    coupon = await service.find_coupon(session, principal.tenant_id, coupon_id=coupon_id)
    used = await service.use_coupon(
        session, coupon, principal.actor, body.reference if body else None, now
    )
    return await _read(session, used, now, response, accept_language)


@router.get(
    "/v1/coupons",
    summary="Find a customer's coupons",
    responses=problems({422: ["customer_required", "phone_invalid", "invalid_cursor"]}),
)
async def list_customer_coupons(
    principal: RightsReader,
    session: SessionDep,
    clock: ClockDep,
    page: PageParamsDep,
    response: Response,
    user_id: Annotated[str | None, Query(description="Customer id")] = None,
    phone: Annotated[
        str | None,
        Query(
            max_length=32,
            description="Customer phone number, as the broker's back end sent it in any "
            "event; spaces, dashes and the + or 00 prefix do not matter",
            examples=["+852 9123 4567"],
        ),
    ] = None,
    accept_language: AcceptLanguage = None,
) -> Page[CouponRead]:
    if not user_id and not phone:
        raise Unprocessable("Give user_id or phone.", code="customer_required")
    digits = normalize_phone(phone) if phone else None
    if phone and digits is None:
        raise Unprocessable("The phone number has too few digits.", code="phone_invalid")
    rows, cursor = await WalletRepository.from_session(session).list(
        principal.tenant_id, page, user_id=user_id, phone=digits
    )
    served = served_for(accept_language)
    items = await service.read_coupons(session, rows, clock.now(), served)
    say_served(response, served)
    return Page(items=items, next_cursor=cursor)
