from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from activity_service.stats import service
from activity_service.stats.reward_client import RewardStatsClient
from activity_service.stats.schemas import ActivityStats, CampaignReport
from service_kit.auth import ACTIVITY_READ, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep, HttpDep
from service_kit.errors import PROBLEM_RESPONSES, problems
from service_kit.routing import ServiceRoute

router = APIRouter(
    route_class=ServiceRoute, prefix="/v1/activities", tags=["stats"], responses=PROBLEM_RESPONSES
)

Reader = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_READ))
]


def reward_stats_client(request: Request, http: HttpDep) -> RewardStatsClient:
    return RewardStatsClient(http, request.app.state.settings.reward_url)


RewardStatsDep = Annotated[RewardStatsClient, Depends(reward_stats_client)]


@router.get(
    "/{activity_id}/stats",
    summary="How is the campaign doing?",
    responses=problems({404: ["activity_not_found"]}),
)
async def get_activity_stats(
    activity_id: uuid.UUID,
    principal: Reader,
    session: SessionDep,
    clock: ClockDep,
    rewards: RewardStatsDep,
) -> ActivityStats:
    """Participants, completions per task, rewards per status, cost per reward type and per
    acquired user of one activity of the caller's tenant (SPEC §5); every kind, including
    non-standard activities whose rewards were issued by hand under their code.

    Reward counts and costs come from reward_service; if it is unreachable the counts come
    from the grant ledger (`rewards.source` = `grant_ledger`), `cost` is null and
    `reward_service_available` is false. Costs are of Issued records — cash: the amount paid;
    coupons and physical items: the prize's cost — converted to the tenant's base currency
    with the FX rate effective now; amounts without a rate are listed in
    `cost.unconverted`."""
    return await service.activity_stats(
        session, principal.tenant_id, activity_id, clock.now(), rewards
    )


@router.get(
    "/{activity_id}/report",
    summary="Campaign report: funnel, inflow and cost",
    responses=problems({404: ["activity_not_found"]}),
)
async def get_campaign_report(
    activity_id: uuid.UUID,
    principal: Reader,
    session: SessionDep,
    clock: ClockDep,
    rewards: RewardStatsDep,
) -> CampaignReport:
    """The campaign's funnel — invited (referral; `took_part` for other kinds) → registered
    → account opened → first deposit — with the conversion rate of each stage, the cohort's
    net inflow (deposits and stock transfers in minus withdrawals and transfers out, since
    the window started, converted to the base currency), next to the cost and cost per
    acquired user of the activity's stats and the cost per first deposit. Trading volume
    is null: no business event carries it yet."""
    return await service.campaign_report(
        session, principal.tenant_id, activity_id, clock.now(), rewards
    )
