from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from activity_service.tenants import service
from activity_service.tenants.repository import TenantRepository
from activity_service.tenants.schemas import (
    FxRateRead,
    FxRatesIn,
    TenantSettingsIn,
    TenantSettingsRead,
)
from service_kit.auth import ACTIVITY_READ, ACTIVITY_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.errors import PROBLEM_RESPONSES, problems
from service_kit.idempotency import IdempotencyDep
from service_kit.pagination import Page, PageParamsDep
from service_kit.preconditions import (
    PRECONDITION_RESPONSES,
    IfMatch,
    etag,
    etag_header,
    required_version,
)
from service_kit.routing import ServiceRoute

router = APIRouter(
    route_class=ServiceRoute, prefix="/v1", tags=["tenant settings"], responses=PROBLEM_RESPONSES
)

SettingsWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_WRITE))
]
SettingsReader = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=ACTIVITY_READ)
    ),
]


SETTINGS_ETAG = etag_header("tenant settings")


@router.get(
    "/tenant-settings",
    summary="The tenant's time zone and base currency",
    responses={200: {"headers": SETTINGS_ETAG}, **problems({})},
)
async def get_tenant_settings(
    principal: SettingsReader, session: SessionDep, response: Response
) -> TenantSettingsRead:
    """Defaults (Asia/Hong_Kong, HKD) apply until an operator sets them (ETag `"0"`)."""
    settings = await service.read_settings(session, principal.tenant_id)
    response.headers["ETag"] = etag(settings.version)
    return settings


@router.put(
    "/tenant-settings",
    summary="Set the tenant's time zone and base currency (If-Match required)",
    responses={200: {"headers": SETTINGS_ETAG}, **PRECONDITION_RESPONSES, **problems({})},
)
async def put_tenant_settings(
    body: TenantSettingsIn,
    principal: SettingsWriter,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> TenantSettingsRead:
    """Send the ETag of the settings as read (`"0"` for the defaults): a change made on an
    older version is a 412, so concurrent edits are never lost."""
    version = required_version(if_match, "tenant settings")
    settings = await service.put_settings(session, principal.tenant_id, body, version)
    response.headers["ETag"] = etag(settings.version)
    return settings


@router.post(
    "/fx-rates",
    status_code=status.HTTP_201_CREATED,
    summary="Add FX rates (with effective time)",
    responses=problems(
        {
            422: {
                "fx_same_currency": "a rate needs two different currencies",
                "fx_duplicate_rate": "the pair already has a rate from that time",
            }
        }
    ),
)
async def post_fx_rates(
    body: FxRatesIn,
    principal: SettingsWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
) -> list[FxRateRead]:
    """A flow is converted with the latest rate of its pair effective at the flow's time
    (or the inverse of the reverse pair), rounded half-even to 6 places. Re-posting the same
    pair and effective time corrects that rate; the call is idempotent."""
    rows = await service.add_rates(session, principal.tenant_id, body, principal.actor)
    return [FxRateRead.model_validate(r) for r in rows]


@router.get("/fx-rates", summary="The tenant's FX rates", responses=problems({}))
async def list_fx_rates(
    principal: SettingsReader, session: SessionDep, page: PageParamsDep
) -> Page[FxRateRead]:
    rows, cursor = await TenantRepository.from_session(session).list_rates(
        principal.tenant_id, page
    )
    return Page(items=[FxRateRead.model_validate(r) for r in rows], next_cursor=cursor)
