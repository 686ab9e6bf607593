from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from contracts.payloads import Node
from referral_service.bindings import service
from referral_service.bindings.schemas import BindingRead, Channel, InviteeBindings, SelfBindRequest
from referral_service.invite_codes.service import resolve_code
from service_kit.auth import ACTIVITY_READ, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES

router = APIRouter(tags=["bindings"], responses=PROBLEM_RESPONSES)

AppUser = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.user}))]
BindingReader = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=ACTIVITY_READ)
    ),
]


@router.post("/v1/me/binding", status_code=status.HTTP_201_CREATED, summary="Bind me to an inviter")
async def bind_me(
    body: SelfBindRequest, principal: AppUser, session: SessionDep, clock: ClockDep
) -> BindingRead:
    """Bind the calling user to the owner of ``invite_code`` at the registration node."""
    owner = await resolve_code(session, principal.tenant_id, body.invite_code, principal.app_id)
    binding = await service.bind(
        session,
        tenant_id=principal.tenant_id,
        invitee_id=principal.sub,
        inviter_id=owner.user_id,
        node=Node.registration,
        channel=Channel.invite_code,
        actor=principal.actor,
        at=clock.now(),
        app_id=principal.app_id,
    )
    return BindingRead.model_validate(binding)


@router.get("/v1/bindings/{invitee_id}", summary="All nodes of one invitee, with history")
async def get_invitee_bindings(
    invitee_id: str, principal: BindingReader, session: SessionDep
) -> InviteeBindings:
    return await service.invitee_bindings(session, principal.tenant_id, invitee_id)
