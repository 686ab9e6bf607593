from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from reward_service.prizes import service
from reward_service.prizes.repository import PrizeRepository
from reward_service.prizes.schemas import PrizeCreate, PrizeRead, PrizeType, PrizeUpdate
from service_kit.auth import RIGHTS_READ, RIGHTS_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES
from service_kit.idempotency import IdempotencyDep
from service_kit.pagination import Page, PageParamsDep
from service_kit.routing import ServiceRoute

router = APIRouter(
    route_class=ServiceRoute, prefix="/v1/prizes", tags=["prizes"], responses=PROBLEM_RESPONSES
)

PrizeWrite = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=RIGHTS_WRITE))
]
PrizeReadAccess = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=RIGHTS_READ)
    ),
]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a prize")
async def create_prize(
    body: PrizeCreate,
    principal: PrizeWrite,
    idempotency: IdempotencyDep,
    session: SessionDep,
) -> PrizeRead:
    """Create a coupon template, a physical item (with stock) or a cash prize (SPEC §3.1)."""
    prize = await service.create_prize(session, principal, body)
    return PrizeRead.model_validate(prize)


@router.get("", summary="List prizes")
async def list_prizes(
    principal: PrizeReadAccess,
    session: SessionDep,
    page: PageParamsDep,
    type: Annotated[PrizeType | None, Query(description="Only this prize type")] = None,
) -> Page[PrizeRead]:
    rows, cursor = await PrizeRepository.from_session(session).list(
        principal.tenant_id, page, type.value if type else None
    )
    return Page(items=[PrizeRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/{prize_id}", summary="Get a prize")
async def get_prize(
    prize_id: uuid.UUID, principal: PrizeReadAccess, session: SessionDep
) -> PrizeRead:
    prize = await service.get_prize(session, principal.tenant_id, prize_id)
    return PrizeRead.model_validate(prize)


@router.patch(
    "/{prize_id}",
    summary="Edit a prize",
    description="Name, type-specific details and stock (`stock` sets, `stock_delta` adjusts "
    "atomically; `stock_would_be_negative` when it would go below zero).",
)
async def update_prize(
    prize_id: uuid.UUID,
    body: PrizeUpdate,
    principal: PrizeWrite,
    session: SessionDep,
    clock: ClockDep,
) -> PrizeRead:
    prize = await service.update_prize(session, principal.tenant_id, prize_id, body, clock.now())
    return PrizeRead.model_validate(prize)
