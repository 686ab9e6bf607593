from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from activity_service.sandbox import service
from activity_service.sandbox.schemas import SandboxAdvance, SandboxClockRead, SandboxCreate
from service_kit.auth import ACTIVITY_READ, ACTIVITY_WRITE, Authenticator, CallerKind, Principal
from service_kit.errors import PROBLEM_RESPONSES, problems
from service_kit.idempotency import IdempotencyDep
from service_kit.routing import ServiceRoute

router = APIRouter(
    route_class=ServiceRoute, prefix="/v1/sandbox", tags=["sandbox"], responses=PROBLEM_RESPONSES
)

SandboxWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_WRITE))
]
SandboxReader = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=ACTIVITY_READ)
    ),
]


SANDBOX_DISABLED, TENANT_NOT_EMPTY = "sandbox_disabled", "tenant_not_empty"


def _sandbox(request: Request) -> service.Sandbox:
    state = request.app.state
    return service.Sandbox(state.db, state.redis, state.http, state.settings)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Make this new tenant a sandbox with its own clock",
    responses={
        200: {"description": "The tenant already was a sandbox: its clock as it is"},
        **problems(
            {
                404: [SANDBOX_DISABLED],
                409: {TENANT_NOT_EMPTY: "the tenant has data in a service"},
                503: {"upstream_unavailable": "another service could not take the clock"},
            }
        ),
    },
)
async def create_sandbox(
    body: SandboxCreate,
    principal: SandboxWriter,
    idempotency: IdempotencyDep,
    request: Request,
    response: Response,
) -> SandboxClockRead:
    """Only where the deployment allows sandboxes (`sandbox_disabled` otherwise), and only
    for a tenant with no data yet in any service (`tenant_not_empty`): a production tenant
    never becomes a sandbox. The clock starts at `starts_at` (default now) and stands still
    until advanced."""
    starts_at = body.starts_at or request.app.state.clock.now()
    created, clock = await service.create(_sandbox(request), principal.tenant_id, starts_at)
    if not created:
        response.status_code = status.HTTP_200_OK
    return service.to_read(clock)


@router.get(
    "/clock",
    summary="The sandbox tenant's clock",
    responses=problems({404: [SANDBOX_DISABLED, "not_sandbox"]}),
)
async def get_sandbox_clock(principal: SandboxReader, request: Request) -> SandboxClockRead:
    return service.to_read(await service.read(_sandbox(request), principal.tenant_id))


@router.post(
    "/clock",
    summary="Advance the sandbox tenant's clock, doing everything due on the way",
    responses={
        202: {"description": "Still advancing: call again with the same `to`, or poll"},
        **problems(
            {
                404: [SANDBOX_DISABLED, "not_sandbox"],
                409: {
                    "clock_backwards": "`to` is before the clock",
                    "advance_in_progress": "another advance of this clock is under way",
                    TENANT_NOT_EMPTY: "another service now holds data of the tenant",
                },
                422: {"advance_too_far": "one advance covers at most the days allowed"},
                503: {"upstream_unavailable": "another service could not take the clock"},
            }
        ),
    },
)
async def advance_sandbox_clock(
    body: SandboxAdvance,
    principal: SandboxWriter,
    idempotency: IdempotencyDep,
    request: Request,
    response: Response,
) -> SandboxClockRead:
    """Moves the clock to `to` in time order, stopping at each instant something falls due
    in any service — each local day's daily run and T+1 settlement, each lock-up expiry —
    and doing it as real time would; activity ends, team failures, coupon expiry and segment
    refresh boundaries follow the clock. Answers 200 once every effect is done (grants have
    become records, lock-ups are settled), or 202 after `wait_seconds` with the clock where
    the work got to. Idempotent: the same `to` again changes nothing; never backwards
    (`clock_backwards`); one advance at a time (`advance_in_progress`)."""
    finished, clock = await service.advance(
        _sandbox(request), principal.tenant_id, body.to, body.wait_seconds
    )
    if not finished:
        response.status_code = status.HTTP_202_ACCEPTED
    return service.to_read(clock)
