from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from activity_service.activities.repository import ActivityRepository
from activity_service.evaluation.repository import (
    EvaluationRepository,
    GrantRepository,
    ReferralRepository,
)
from activity_service.evaluation.schemas import (
    Explanation,
    GrantRead,
    InvitationTotals,
    OutcomeRead,
)
from service_kit.auth import ACTIVITY_READ, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES, NotFound
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
) -> Explanation:
    """The activity's rules, the user's grants (with the reward record status reported
    back) and, per rule, the latest evaluation outcome — e.g. `not_in_segment`,
    `not_new_user`, `cap_reached`, `no_inviter`, `task_not_completed` (SPEC §5)."""
    activity = await ActivityRepository.from_session(session).get(principal.tenant_id, activity_id)
    if activity is None:
        raise NotFound(f"No activity {activity_id} in this tenant.", code="activity_not_found")
    grants = await GrantRepository.from_session(session).of_activity_user(
        principal.tenant_id, activity_id, user_id
    )
    outcomes = await EvaluationRepository.from_session(session).outcomes(
        principal.tenant_id, activity_id, user_id
    )
    if grants:
        hint = f"{len(grants)} grant(s); see each record_status"
    elif outcomes:
        reasons = sorted({o.outcome for o in outcomes if o.outcome != "granted"})
        hint = "no grant: " + ", ".join(reasons)
    else:
        hint = "no grant and no evaluation yet: no qualifying event was received"
    return Explanation(
        activity_id=activity.id,
        activity_code=activity.activity_code,
        user_id=user_id,
        status_hint=hint,
        rules=list((activity.config or {}).get("rules", [])),
        grants=[GrantRead.model_validate(g) for g in grants],
        outcomes=[OutcomeRead.model_validate(o) for o in outcomes],
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
