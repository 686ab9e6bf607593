from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from reward_service.payouts import service
from reward_service.payouts.repository import PayoutRepository
from reward_service.payouts.schemas import PayoutEndpointRead, PayoutEndpointWrite
from service_kit.auth import RIGHTS_READ, RIGHTS_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES
from service_kit.routing import ServiceRoute

router = APIRouter(
    route_class=ServiceRoute,
    prefix="/v1/payout-endpoint",
    tags=["cash payouts"],
    responses=PROBLEM_RESPONSES,
)

PayoutReader = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=RIGHTS_READ))
]
PayoutWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=RIGHTS_WRITE))
]


async def _read(request: Request, session: SessionDep, tenant_id: str) -> PayoutEndpointRead:
    url, source = await service.endpoint_url(session, tenant_id, request.app.state.settings)
    configured = await PayoutRepository.from_session(session).endpoint(tenant_id)
    return PayoutEndpointRead(
        url=url,
        source=source,
        updated_by=configured.updated_by if configured else None,
        updated_at=configured.updated_at if configured else None,
    )


@router.get("", summary="The tenant's cash system endpoint")
async def get_payout_endpoint(
    request: Request, principal: PayoutReader, session: SessionDep
) -> PayoutEndpointRead:
    return await _read(request, session, principal.tenant_id)


@router.put("", summary="Configure the tenant's cash system endpoint")
async def put_payout_endpoint(
    body: PayoutEndpointWrite,
    request: Request,
    principal: PayoutWriter,
    session: SessionDep,
    clock: ClockDep,
) -> PayoutEndpointRead:
    await PayoutRepository.from_session(session).put_endpoint(
        principal.tenant_id, str(body.url), principal.actor, clock.now()
    )
    return await _read(request, session, principal.tenant_id)
