from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from referral_service.invite_codes import service
from referral_service.invite_codes.schemas import InviteCodeRead
from service_kit.auth import Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.errors import PROBLEM_RESPONSES

router = APIRouter(tags=["invite codes"], responses=PROBLEM_RESPONSES)

AppUser = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.user}))]
TrustedService = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.service}))]


@router.get("/v1/me/invite-code", summary="My invite code for my app")
async def get_my_invite_code(principal: AppUser, session: SessionDep) -> InviteCodeRead:
    """Created on the first call; the same code forever after."""
    assert principal.app_id is not None
    code = await service.get_or_create_code(
        session, principal.tenant_id, principal.app_id, principal.sub
    )
    return InviteCodeRead.model_validate(code)


@router.get("/v1/invite-codes/{code}", summary="Resolve an invite code to its user")
async def resolve_invite_code(
    code: str,
    principal: TrustedService,
    session: SessionDep,
    app_id: Annotated[str | None, Query(description="Only within this app")] = None,
) -> InviteCodeRead:
    found = await service.resolve_code(session, principal.tenant_id, code, app_id)
    return InviteCodeRead.model_validate(found)
