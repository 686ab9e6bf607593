from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from reward_service.prizes import service
from reward_service.prizes.repository import PrizeRepository
from reward_service.prizes.schemas import PrizeCreate, PrizeRead, PrizeType, PrizeUpdate
from reward_service.prizes.usage import rule_usage
from service_kit.auth import RIGHTS_READ, RIGHTS_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep, HttpDep
from service_kit.errors import PROBLEM_RESPONSES, problems
from service_kit.idempotency import IdempotencyDep
from service_kit.pagination import Page, PageParamsDep
from service_kit.preconditions import (
    PRECONDITION_RESPONSES,
    IfMatch,
    etag,
    etag_header,
    parse_if_match,
)
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


PRIZE_ETAG = etag_header("prize")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a prize",
    responses={201: {"headers": PRIZE_ETAG}, **problems({422: ["cost_currency_required"]})},
)
async def create_prize(
    body: PrizeCreate,
    principal: PrizeWrite,
    idempotency: IdempotencyDep,
    session: SessionDep,
    response: Response,
) -> PrizeRead:
    """Create a coupon template, a physical item (with stock) or a cash prize (SPEC §3.1)."""
    prize = await service.create_prize(session, principal, body)
    response.headers["ETag"] = etag(prize.version)
    return PrizeRead.model_validate(prize)


@router.get("", summary="List prizes", responses=problems({422: ["invalid_cursor"]}))
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


@router.get(
    "/{prize_id}",
    summary="Get a prize",
    responses={200: {"headers": PRIZE_ETAG}, **problems({404: ["prize_not_found"]})},
)
async def get_prize(
    prize_id: uuid.UUID, principal: PrizeReadAccess, session: SessionDep, response: Response
) -> PrizeRead:
    prize = await service.get_prize(session, principal.tenant_id, prize_id)
    response.headers["ETag"] = etag(prize.version)
    return PrizeRead.model_validate(prize)


@router.patch(
    "/{prize_id}",
    summary="Edit a prize (If-Match required, except for a stock_delta alone)",
    description="Name, type-specific details and stock (`stock` sets, `stock_delta` adjusts "
    "atomically; `stock_would_be_negative` when it would go below zero). Send the ETag of "
    "the prize as read in `If-Match`: an edit made on an older version is a 412, so two "
    "operators cannot overwrite each other's changes. The ETag versions the prize's "
    "definition: a `stock_delta` alone (which applies to the live stock and composes with any "
    "other change) needs no If-Match and, like items taken by issuing, leaves the ETag as is.",
    responses={
        200: {"headers": PRIZE_ETAG},
        **PRECONDITION_RESPONSES,
        **problems(
            {
                404: ["prize_not_found"],
                409: {"stock_would_be_negative": "`stock_delta` would take the stock below 0"},
                422: {
                    "field_not_applicable": "a field of another prize type",
                    "cost_currency_required": "a cost needs its currency",
                },
            }
        ),
    },
)
async def update_prize(
    prize_id: uuid.UUID,
    body: PrizeUpdate,
    principal: PrizeWrite,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> PrizeRead:
    version = parse_if_match(if_match, required=False, what="prize")
    prize = await service.update_prize(
        session, principal.tenant_id, prize_id, body, version, clock.now()
    )
    response.headers["ETag"] = etag(prize.version)
    return PrizeRead.model_validate(prize)


@router.delete(
    "/{prize_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a prize nothing uses",
    responses={
        **PRECONDITION_RESPONSES,
        **problems(
            {
                404: ["prize_not_found"],
                409: {
                    "prize_in_use": "an activity's rules or limits, a reward record or a manual "
                    "issuance name it (see `activity_codes`, `used_by`)"
                },
                503: {"prize_usage_unknown": "the activity service did not say what uses it"},
            }
        ),
    },
)
async def delete_prize(
    prize_id: uuid.UUID,
    request: Request,
    principal: PrizeWrite,
    session: SessionDep,
    http: HttpDep,
    if_match: IfMatch = None,
) -> None:
    """A prize no activity rule (draft or published), reward record or manual issuance
    names. Anything in use stays: edit or delete the draft first, or leave the prize.
    `If-Match` is optional; when sent, a stale ETag is a 412."""
    usage = rule_usage(http, request.app.state.settings.activity_url, principal.tenant_id)
    version = parse_if_match(if_match, required=False, what="prize")
    await service.delete_prize(session, principal.tenant_id, prize_id, usage, version)
