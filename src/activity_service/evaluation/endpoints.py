from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from activity_service.evaluation import explain
from activity_service.evaluation.dry_run import dry_run_activity
from activity_service.evaluation.dry_run_decisions import Candidate
from activity_service.evaluation.engine import Window
from activity_service.evaluation.referral_client import ReferralLookup, ReferralUnavailable
from activity_service.evaluation.repository import ReferralRepository
from activity_service.evaluation.reruns import LISTED_GRANTS, rerun_day
from activity_service.evaluation.schemas import (
    DayRerun,
    DryRunIn,
    DryRunItem,
    DryRunRead,
    Explanation,
    GrantRead,
    InvitationTotals,
    LimitBitten,
    PrizeCostRead,
)
from service_kit.auth import ACTIVITY_READ, ACTIVITY_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES, Unprocessable, UpstreamUnavailable, problems
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


@router.get(
    "/{activity_id}/explain",
    summary="Why a user did or did not earn",
    responses=problems({404: ["activity_not_found"]}),
)
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
    "/v1/inviters/{inviter_id}/invitation-totals",
    summary="An inviter's invitation totals",
    responses=problems({}),
)
async def get_invitation_totals(
    inviter_id: str, principal: TotalsReader, session: SessionDep, clock: ClockDep
) -> InvitationTotals:
    """Qualifying invitees over all referral activities: regular ones make the cumulative
    total, marketing ones are counted apart (SPEC §1.7)."""
    return await _totals(session, principal.tenant_id, inviter_id, clock)


@inviters_router.get(
    "/v1/me/invitation-totals", summary="My invitation totals", responses=problems({})
)
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
    responses=problems(
        {
            409: {"day_not_over": "the day's run is not due yet"},
            503: {"upstream_unavailable": "the referral service cannot say who invited whom"},
        }
    ),
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
    try:
        rerun = await rerun_day(state.db, principal.tenant_id, day, clock, referral)
    except ReferralUnavailable as exc:
        # What the run decided before is kept (its keys); the next re-run adds the rest.
        raise UpstreamUnavailable(
            "The referral service cannot answer now; re-run the day later.", service="referral"
        ) from exc
    return DayRerun(
        day=rerun.day,
        started_at=rerun.started_at,
        finished_at=rerun.finished_at,
        grants_made=rerun.grants_made,
        grants=[GrantRead.model_validate(g) for g in rerun.grants],
        truncated=rerun.grants_made > LISTED_GRANTS,
    )


@router.post(
    "/{activity_id}/dry-run",
    summary="What a draft or running activity would have granted",
    responses=problems(
        {
            404: ["activity_not_found"],
            409: {"activity_closed": "a closed activity is not dry-run"},
            422: {
                "dry_run_unsupported": "a team or non-standard activity",
                "invalid_period": "`ends_at` is not after `starts_at`",
                "period_not_over": "the period has not ended yet",
                "period_too_long": "the period is longer than 92 days",
                "invalid_cursor": "the cursor is not one this endpoint gave",
            },
            503: {"upstream_unavailable": "the reward or referral service cannot answer"},
        }
    ),
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
    through the activity's rules as if the period were its window — basic and referral
    activities, draft or running — and writes nothing, in this service or any other: who
    would have earned what (paged; `show: refused` lists what users completed but would not
    have been granted, and why), the total cost in the base currency, and the limits that
    would have bitten (per-user caps, total quantities, the budget) and for whom.

    Referral activities use the bindings stored now (a node's inviter is frozen once the
    node is completed), asked of the referral service. Team activities are refused (422
    `dry_run_unsupported`): assists to teams are not stored business events, so a past
    period holds nothing to replay; non-standard ones have no rules.

    A dry-run without `cursor` always decides again; its later pages are served from that
    result for 5 minutes (or decided again, the same bounded set, where it is not kept)."""
    state = request.app.state
    offset = _offset(body.cursor)
    answer = await dry_run_activity(
        state.db,
        state.http,
        state.settings.reward_url,
        state.settings.referral_url,
        principal.tenant_id,
        activity_id,
        Window(body.starts_at, body.ends_at),
        body.user_limit,
        clock.now(),
        next_page=body.cursor is not None,
    )
    report = answer.report
    listed: list[DryRunItem]
    if body.show == "granted":
        listed = [_item(c, "granted", None) for c in report.grants[offset : offset + body.limit]]
        length = len(report.grants)
    else:
        listed = [
            _item(r.candidate, r.reason, r.detail)
            for r in report.refusals[offset : offset + body.limit]
        ]
        length = len(report.refusals)
    known = [c.total_base for c in answer.prize_costs if c.total_base is not None]
    return DryRunRead(
        activity_id=answer.activity.id,
        kind=answer.activity.kind,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        users_evaluated=report.users_evaluated,
        users_truncated=report.users_truncated,
        grants_total=len(report.grants),
        users_rewarded=len({g.user_id for g in report.grants}),
        refusals_total=len(report.refusals),
        base_currency=answer.tenant.base_currency,
        cost_total=sum(known, start=Decimal(0)),
        cost_complete=len(known) == len(answer.prize_costs),
        costs=[PrizeCostRead.model_validate(c) for c in answer.prize_costs],
        budget_spent=report.budget_spent,
        caps=[
            LimitBitten(
                limit=b.limit,  # type: ignore[arg-type]
                prize_id=uuid.UUID(b.prize_id) if b.prize_id else None,
                value=b.value,
                currency=b.currency,
                refused=b.refused,
                users=len(b.users),
                first_refused_at=b.first_at or body.starts_at,
                first_users=b.first_users,
            )
            for _, b in sorted(report.bites.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
        ],
        refused=dict(sorted(report.refused.items())),
        show=body.show,
        items=listed,
        next_cursor=str(offset + body.limit) if offset + body.limit < length else None,
    )


def _item(c: Candidate, outcome: str, detail: str | None) -> DryRunItem:
    return DryRunItem(
        user_id=c.user_id,
        rule_id=c.rule_id,
        prize_id=uuid.UUID(c.prize_id) if c.prize_id else None,
        task=c.task,
        achieved_at=c.achieved_at,
        counterpart_id=c.counterpart_id,
        referral_role=c.role,
        outcome=outcome,
        detail=detail,
    )


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or len(cursor) > 9:
        raise Unprocessable("cursor is not one this endpoint gave.", code="invalid_cursor")
    return int(cursor)
