from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from referral_service.tenant_settings import service
from referral_service.tenant_settings.schemas import (
    ReferralTenantSettingsRead,
    ReferralTenantSettingsUpdate,
)
from service_kit.auth import ACTIVITY_READ, ACTIVITY_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES, problems
from service_kit.preconditions import (
    PRECONDITION_RESPONSES,
    IfMatch,
    etag,
    etag_header,
    required_version,
)
from service_kit.routing import ServiceRoute

router = APIRouter(route_class=ServiceRoute, tags=["settings"], responses=PROBLEM_RESPONSES)

SettingsReader = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_READ))
]
SettingsWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_WRITE))
]


SETTINGS_ETAG = etag_header("referral settings")


@router.get(
    "/v1/settings",
    summary="The tenant's referral settings",
    responses={200: {"headers": SETTINGS_ETAG}, **problems({})},
)
async def get_referral_settings(
    request: Request, principal: SettingsReader, session: SessionDep, response: Response
) -> ReferralTenantSettingsRead:
    default = request.app.state.settings.registration_bind_grace_hours
    settings = await service.read_settings(session, principal.tenant_id, default)
    response.headers["ETag"] = etag(settings.version)
    return settings


@router.put(
    "/v1/settings",
    summary="Change the tenant's referral settings (If-Match required)",
    responses={200: {"headers": SETTINGS_ETAG}, **PRECONDITION_RESPONSES, **problems({})},
)
async def put_referral_settings(
    body: ReferralTenantSettingsUpdate,
    request: Request,
    principal: SettingsWriter,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> ReferralTenantSettingsRead:
    """Send the ETag of the settings as read (`"0"` for the defaults): a change made on an
    older version is a 412, so concurrent edits are never lost."""
    settings = await service.update_settings(
        session,
        principal.tenant_id,
        body.registration_bind_grace_hours,
        principal.actor,
        clock.now(),
        required_version(if_match, "referral settings"),
        request.app.state.settings.registration_bind_grace_hours,
    )
    response.headers["ETag"] = etag(settings.version)
    return settings
