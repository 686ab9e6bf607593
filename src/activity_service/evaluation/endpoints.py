from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from activity_service.evaluation import explain
from activity_service.evaluation.repository import ReferralRepository
from activity_service.evaluation.schemas import Explanation, InvitationTotals
from service_kit.auth import ACTIVITY_READ, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES
from service_kit.routing import ServiceRoute

router = APIRouter(
    route_class=ServiceRoute,
    prefix="/v1/activities",
    tags=["evaluation"],
    responses=PROBLEM_RESPONSES,
)

inviters_router = APIRouter(
    route_class=ServiceRoute, tags=["evaluation"], responses=PROBLEM_RESPONSES
)

Reader = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_READ))
]


@router.get("/{activity_id}/explain", summary="Why a user did or did not earn")
async def explain_user(
    activity_id: uuid.UUID,
    principal: Reader,
    session: SessionDep,
    user_id: Annotated[str, Query(min_length=1, max_length=128, examples=["u-2002"])],
    clock: ClockDep,
) -> Explanation:
    """The activity's rules, the user's grants (with the reward record status reported
    back), the inviter's rewards this user's tasks earned (`credited`) and, per rule, the
    latest evaluation outcome — e.g. `not_in_segment`, `not_new_user`, `cap_reached`,
    `no_inviter`, `task_not_completed`, `device_seen_before` (SPEC §5). An outcome a later
    fact made stale is marked `current: false` with `superseded_by`; flows stored and
    waiting for the daily run show as `awaiting_daily_run` with the run's `due_at`."""
    return await explain.explain_user(
        session, principal.tenant_id, activity_id, user_id, clock.now()
    )


TotalsReader = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=ACTIVITY_READ)
    ),
]
AppUser = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.user}))]


async def _totals(
    session: SessionDep, tenant_id: str, inviter_id: str, clock: ClockDep
) -> InvitationTotals:
    repo = ReferralRepository.from_session(session)
    counts = await repo.invitation_totals(tenant_id, inviter_id)
    return InvitationTotals(
        inviter_id=inviter_id,
        regular=counts["regular"],
        marketing=counts["marketing"],
        regular_activity_id=await repo.current_regular(tenant_id, inviter_id, clock.now()),
    )


@inviters_router.get(
    "/v1/inviters/{inviter_id}/invitation-totals", summary="An inviter's invitation totals"
)
async def get_invitation_totals(
    inviter_id: str, principal: TotalsReader, session: SessionDep, clock: ClockDep
) -> InvitationTotals:
    """Qualifying invitees over all referral activities: regular ones make the cumulative
    total, marketing ones are counted apart (SPEC §1.7)."""
    return await _totals(session, principal.tenant_id, inviter_id, clock)


@inviters_router.get("/v1/me/invitation-totals", summary="My invitation totals")
async def get_my_invitation_totals(
    principal: AppUser, session: SessionDep, clock: ClockDep
) -> InvitationTotals:
    return await _totals(session, principal.tenant_id, principal.sub, clock)
