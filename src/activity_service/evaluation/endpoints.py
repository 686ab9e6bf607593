from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from activity_service.evaluation import explain
from activity_service.evaluation.dry_run import caps_of as _caps_of
from activity_service.evaluation.dry_run import dry_run_activity
from activity_service.evaluation.engine import Window
from activity_service.evaluation.referral_client import ReferralLookup
from activity_service.evaluation.repository import ReferralRepository
from activity_service.evaluation.reruns import LISTED_GRANTS, rerun_day
from activity_service.evaluation.schemas import (
    CapBitten,
    DayRerun,
    DryRunIn,
    DryRunRead,
    Explanation,
    GrantRead,
    InvitationTotals,
    PrizeCostRead,
    WouldGrantRead,
)
from service_kit.auth import ACTIVITY_READ, ACTIVITY_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES, Unprocessable
from service_kit.idempotency import IdempotencyDep
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


Writer = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_WRITE))
]


@inviters_router.post(
    "/v1/daily-runs/{day}",
    tags=["evaluation"],
    summary="Re-run a past day's daily run (after late or corrected events)",
)
async def rerun_daily_run(
    day: date, principal: Writer, idempotency: IdempotencyDep, request: Request, clock: ClockDep
) -> DayRerun:
    """Decides the day again for this tenant from its first user, as its daily run did,
    with the events stored now. Idempotent: a grant already made is never made again (its
    key), so the answer lists only what the re-run added, and a second re-run adds nothing.
    Only days whose run is due on the tenant's clock (`day_not_over` otherwise)."""
    state = request.app.state
    referral = ReferralLookup(state.http, state.settings.referral_url)
    rerun = await rerun_day(state.db, principal.tenant_id, day, clock, referral)
    return DayRerun(
        day=rerun.day,
        started_at=rerun.started_at,
        finished_at=rerun.finished_at,
        grants_made=rerun.grants_made,
        grants=[GrantRead.model_validate(g) for g in rerun.grants],
        truncated=rerun.grants_made > LISTED_GRANTS,
    )


@router.post(
    "/{activity_id}/dry-run", summary="What a draft or running activity would have granted"
)
async def dry_run(
    activity_id: uuid.UUID,
    body: DryRunIn,
    principal: Reader,
    idempotency: IdempotencyDep,
    request: Request,
    clock: ClockDep,
) -> DryRunRead:
    """Replays the stored events of a past period (at most 92 days, `user_limit` users)
    through the activity's rules as if the period were its window — basic activities, draft
    or running — and writes nothing: who would have earned what (paged), the total cost in
    the base currency, and the caps that would have bitten. Every page decides the same
    bounded set again; `cursor` only moves through the list."""
    state = request.app.state
    answer = await dry_run_activity(
        state.db,
        state.http,
        state.settings.reward_url,
        principal.tenant_id,
        activity_id,
        Window(body.starts_at, body.ends_at),
        body.user_limit,
        clock.now(),
    )
    report = answer.report
    offset = _offset(body.cursor)
    page = report.grants[offset : offset + body.limit]
    more = offset + body.limit < len(report.grants)
    known = [c.total_base for c in answer.prize_costs if c.total_base is not None]
    caps = {str(k): v for k, v in _caps_of(answer.activity).items()}
    return DryRunRead(
        activity_id=answer.activity.id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        users_evaluated=report.users_evaluated,
        users_truncated=report.users_truncated,
        grants_total=len(report.grants),
        users_rewarded=len({g.user_id for g in report.grants}),
        base_currency=answer.tenant.base_currency,
        cost_total=sum(known, start=Decimal(0)),
        cost_complete=len(known) == len(answer.prize_costs),
        costs=[PrizeCostRead.model_validate(c) for c in answer.prize_costs],
        caps=[
            CapBitten(prize_id=uuid.UUID(p), cap=caps[p], refused=n)
            for p, n in sorted(report.capped.items())
        ],
        refused=dict(report.refused),
        items=[WouldGrantRead.model_validate(g) for g in page],
        next_cursor=str(offset + body.limit) if more else None,
    )


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or len(cursor) > 9:
        raise Unprocessable("cursor is not one this endpoint gave.", code="invalid_cursor")
    return int(cursor)
