from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from contracts.payloads import SandboxClockState, SandboxClockSync
from reward_service.sandbox import service
from service_kit.auth import Authenticator, CallerKind, Principal
from service_kit.errors import PROBLEM_RESPONSES, NotFound
from service_kit.sandbox import CLOCK_SYNC_PROBLEMS

router = APIRouter(prefix="/v1/sandbox", tags=["sandbox"], responses=PROBLEM_RESPONSES)

PlatformService = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.service}))]


@router.put(
    "/clock",
    summary="Set a sandbox tenant's time here (from the activity service)",
    responses=CLOCK_SYNC_PROBLEMS,
)
async def sync_sandbox_clock(
    body: SandboxClockSync, principal: PlatformService, request: Request
) -> SandboxClockState:
    """Called by the activity service, which owns sandbox clocks, as it advances one: the
    time only moves forward; with `settle`, lock-ups due by then are settled before the
    answer. The answer says how much of the tenant's work is still queued here."""
    state = request.app.state
    if not state.settings.sandbox_enabled:
        raise NotFound("This deployment has no sandbox tenants.", code="sandbox_disabled")
    return await service.sync(
        state.db, state.http, state.redis, state.settings, principal.tenant_id, body
    )
