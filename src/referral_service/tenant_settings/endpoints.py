from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from referral_service.tenant_settings import service
from referral_service.tenant_settings.schemas import (
    ReferralTenantSettingsRead,
    ReferralTenantSettingsUpdate,
)
from service_kit.auth import ACTIVITY_READ, ACTIVITY_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES
from service_kit.routing import ServiceRoute

router = APIRouter(route_class=ServiceRoute, tags=["settings"], responses=PROBLEM_RESPONSES)

SettingsReader = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_READ))
]
SettingsWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_WRITE))
]


@router.get("/v1/settings", summary="The tenant's referral settings")
async def get_referral_settings(
    request: Request, principal: SettingsReader, session: SessionDep
) -> ReferralTenantSettingsRead:
    default = request.app.state.settings.registration_bind_grace_hours
    return await service.read_settings(session, principal.tenant_id, default)


@router.put("/v1/settings", summary="Change the tenant's referral settings")
async def put_referral_settings(
    body: ReferralTenantSettingsUpdate,
    principal: SettingsWriter,
    session: SessionDep,
    clock: ClockDep,
) -> ReferralTenantSettingsRead:
    return await service.update_settings(
        session,
        principal.tenant_id,
        body.registration_bind_grace_hours,
        principal.actor,
        clock.now(),
    )
