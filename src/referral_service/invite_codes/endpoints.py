from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from referral_service.invite_codes import service
from referral_service.invite_codes.attempts import CodeAttemptLimiter
from referral_service.invite_codes.schemas import InviteCodeRead
from service_kit.auth import Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.errors import PROBLEM_RESPONSES, problems
from service_kit.routing import ServiceRoute

router = APIRouter(route_class=ServiceRoute, tags=["invite codes"], responses=PROBLEM_RESPONSES)

AppUser = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.user}))]
TrustedService = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.service}))]

# What resolving a code may answer (here and when a user binds with one).
CODE_PROBLEMS: dict[int, dict[str, str]] = {
    404: {"invite_code_not_found": "no user has this code"},
    422: {"invalid_invite_code": "not the shape of an invite code"},
    429: {"too_many_attempts": "too many wrong codes from this caller; see `Retry-After`"},
}


def user_code_limiter(request: Request) -> CodeAttemptLimiter:
    settings = request.app.state.settings
    return CodeAttemptLimiter(
        request.app.state.redis,
        settings.queue_prefix,
        settings.code_failure_limit,
        settings.code_failure_window_seconds,
    )


def service_code_limiter(request: Request) -> CodeAttemptLimiter:
    settings = request.app.state.settings
    return CodeAttemptLimiter(
        request.app.state.redis,
        settings.queue_prefix,
        settings.code_failure_limit_service,
        settings.code_failure_window_seconds,
    )


LimiterDep = Annotated[CodeAttemptLimiter, Depends(user_code_limiter)]
ServiceLimiterDep = Annotated[CodeAttemptLimiter, Depends(service_code_limiter)]


@router.get("/v1/me/invite-code", summary="My invite code for my app", responses=problems({}))
async def get_my_invite_code(principal: AppUser, session: SessionDep) -> InviteCodeRead:
    """Created on the first call; the same code forever after."""
    assert principal.app_id is not None
    code = await service.get_or_create_code(
        session, principal.tenant_id, principal.app_id, principal.sub
    )
    return InviteCodeRead.model_validate(code)


@router.get(
    "/v1/invite-codes/{code}",
    summary="Resolve an invite code to its user",
    responses=problems(CODE_PROBLEMS),
)
async def resolve_invite_code(
    code: Annotated[
        str, Path(description="The code, case and dashes forgiven", examples=["K7M2XQ9D"])
    ],
    principal: TrustedService,
    session: SessionDep,
    limiter: ServiceLimiterDep,
    app_id: Annotated[str | None, Query(description="Only within this app")] = None,
) -> InviteCodeRead:
    """422 `invalid_invite_code` for a malformed code, 404 `invite_code_not_found` for an
    unknown one; wrong codes count towards the caller's limit (429 `too_many_attempts`)."""
    found = await service.resolve_code_throttled(session, limiter, principal, code, app_id)
    return InviteCodeRead.model_validate(found)
