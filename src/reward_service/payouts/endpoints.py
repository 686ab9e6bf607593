from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from reward_service.payouts import service
from reward_service.payouts.repository import PayoutRepository
from reward_service.payouts.schemas import PayoutEndpointRead, PayoutEndpointWrite
from service_kit.auth import RIGHTS_READ, RIGHTS_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep, HttpDep
from service_kit.errors import PROBLEM_RESPONSES, problems
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


async def _read(
    request: Request, session: SessionDep, tenant_id: str, generated: str | None = None
) -> PayoutEndpointRead:
    settings = request.app.state.settings
    url, source = await service.endpoint_url(session, tenant_id, settings)
    configured = await PayoutRepository.from_session(session).endpoint(tenant_id)
    target = await service.cash_target(session, tenant_id, settings, url) if url else None
    return PayoutEndpointRead(
        url=url,
        source=source,
        signed=bool(target and target.signing_secret),
        signing_secret=generated,
        updated_by=configured.updated_by if configured else None,
        updated_at=configured.updated_at if configured else None,
    )


@router.get("", summary="The tenant's cash system endpoint", responses=problems({}))
async def get_payout_endpoint(
    request: Request, principal: PayoutReader, session: SessionDep
) -> PayoutEndpointRead:
    return await _read(request, session, principal.tenant_id)


@router.put(
    "",
    summary="Configure the tenant's cash system endpoint",
    responses=problems({422: {"url_not_allowed": "the URL is not one the platform may call"}}),
)
async def put_payout_endpoint(
    body: PayoutEndpointWrite,
    request: Request,
    principal: PayoutWriter,
    session: SessionDep,
    clock: ClockDep,
    http: HttpDep,
) -> PayoutEndpointRead:
    """422 `url_not_allowed` when the URL is not https or does not point to a public
    address (outside development). Calls are signed with `signing_secret`; without one a
    secret is generated and shown in this answer only."""
    generated = await service.configure_endpoint(
        session,
        http.outbound,
        principal.tenant_id,
        str(body.url),
        body.signing_secret,
        principal.actor,
        clock.now(),
    )
    return await _read(request, session, principal.tenant_id, generated)
