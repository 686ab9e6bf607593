"""SPEC §5 "How is the campaign doing?": participants, completions per task, rewards per
status, cost per reward type and per acquired user — callable without HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.repository import ActivityRepository
from activity_service.activities.rules import status_of
from activity_service.evaluation.limits import limits_of
from activity_service.stats.aggregation import (
    COMPLETED_WITHOUT_GRANT,
    NOT_TAKING_PART,
    cost_per_user,
    cost_summary,
    counts_from_ledger,
    counts_from_reward_service,
    funnel,
    net_inflow,
    rule_tasks,
)
from activity_service.stats.repository import ReportRepository, StatsRepository
from activity_service.stats.reward_client import RewardStatsClient
from activity_service.stats.schemas import (
    ActivityStats,
    BudgetLeft,
    CampaignReport,
    Participants,
    PrizeTotalLeft,
    TaskCompletions,
    TeamCounts,
)
from activity_service.tenants.service import tenant_context
from service_kit.errors import NotFound


async def activity_stats(
    session: AsyncSession,
    tenant_id: str,
    activity_id: uuid.UUID,
    now: datetime,
    rewards: RewardStatsClient,
) -> ActivityStats:
    activity = await ActivityRepository.from_session(session).get(tenant_id, activity_id)
    if activity is None:
        raise NotFound(f"No activity {activity_id} in this tenant.", code="activity_not_found")
    repo = StatsRepository.from_session(session)
    tasks = rule_tasks(activity.config or {})
    basis: Literal["qualifying_invitees", "rewarded_users"]
    teams: TeamCounts | None = None
    # reward_service is the authority on records (it also holds rewards issued by hand
    # under the code); the grant ledger is this service's mirror of it.
    answer = await rewards.fetch(tenant_id, activity.activity_code)
    ledger = await repo.grants_by_record_status(tenant_id, activity.id)

    if activity.kind == "referral":
        inviters, invitees = await repo.referral_sides(tenant_id, activity.id)
        # Invitees' own outcomes are recorded before their inviter is known, so they would
        # count every organic user: referral participation is the qualifications' two sides.
        users = await repo.participants(
            tenant_id, activity.id, with_outcomes=False, not_taking_part=NOT_TAKING_PART
        )
        participants = Participants(users=users, inviters=inviters, invitees=invitees)
        completions = await repo.referral_completions(tenant_id, activity.id, tasks)
        acquired, basis = invitees, "qualifying_invitees"
    else:
        users = await repo.participants(
            tenant_id, activity.id, with_outcomes=True, not_taking_part=NOT_TAKING_PART
        )
        if activity.kind == "non_standard" and answer is not None:
            # No rules here: its participants are the users rewarded by hand under its code.
            users = answer.users
        participants = Participants(users=users)
        if activity.kind == "team":
            initiators, helpers, started, succeeded = await repo.team_sides(tenant_id, activity.id)
            participants.initiators, participants.helpers = initiators, helpers
            teams = TeamCounts(started=started, succeeded=succeeded)
        completions = await repo.completions(tenant_id, activity.id, tasks, COMPLETED_WITHOUT_GRANT)
        acquired = (
            answer.issued_users
            if answer is not None
            else await repo.rewarded_users(tenant_id, activity.id)
        )
        basis = "rewarded_users"

    if answer is not None:
        counts = counts_from_reward_service(answer.counts)
        counts.not_yet_recorded = ledger.get("granted", 0)
        tenant = await tenant_context(session, tenant_id)
        cost = cost_summary(answer.costs, tenant.base_currency, tenant.rates, now)
    else:
        counts = counts_from_ledger(ledger)
        cost = None
    limits = limits_of(activity.config)
    budget = None
    if limits.budget is not None and limits.currency is not None:
        spent = await repo.budget_spent(tenant_id, activity.id)
        budget = BudgetLeft(
            currency=limits.currency,
            amount=limits.budget,
            spent=spent,
            remaining=max(limits.budget - spent, Decimal(0)),
        )
    taken = await repo.prize_totals_taken(tenant_id, activity.id) if limits.totals else {}
    totals = [
        PrizeTotalLeft(
            prize_id=uuid.UUID(prize_id),
            total_quantity=total,
            granted=taken.get(uuid.UUID(prize_id), 0),
            remaining=max(total - taken.get(uuid.UUID(prize_id), 0), 0),
        )
        for prize_id, total in limits.totals.items()
    ]
    return ActivityStats(
        activity_id=activity.id,
        activity_code=activity.activity_code,
        kind=activity.kind,
        status=status_of(activity.state, activity.ends_at, now).value,
        as_of=now,
        participants=participants,
        completions=[TaskCompletions(task=t, users=n) for t, n in sorted(completions.items())],
        teams=teams,
        rewards=counts,
        cost=cost,
        acquired_users=acquired,
        acquired_users_basis=basis,
        cost_per_acquired_user=cost_per_user(cost, acquired),
        reward_service_available=answer is not None,
        budget=budget,
        prize_totals=totals,
    )


async def campaign_report(
    session: AsyncSession,
    tenant_id: str,
    activity_id: uuid.UUID,
    now: datetime,
    rewards: RewardStatsClient,
) -> CampaignReport:
    """The campaign's funnel (invited → registered → account opened → first deposit), its
    cohort's net inflow, next to the cost per acquired user of the activity's stats."""
    stats = await activity_stats(session, tenant_id, activity_id, now, rewards)
    activity = await ActivityRepository.from_session(session).get(tenant_id, activity_id)
    assert activity is not None  # activity_stats answered 404 otherwise
    referral = activity.kind == "referral"
    since = activity.starts_at or activity.created_at
    params = {
        "tenant_id": tenant_id,
        "activity_id": activity.id,
        "activity_code": activity.activity_code,
        "starts_at": since,
        "ends_at": activity.ends_at or now,
        "until": now,
        "not_taking_part": sorted(NOT_TAKING_PART),
    }
    repo = ReportRepository.from_session(session)
    cohort, registered, opened, deposited = await repo.funnel(params, referral=referral)
    stages = [
        ("invited" if referral else "took_part", cohort),
        ("registered", registered),
        ("account_opened", opened),
        ("first_deposit", deposited),
    ]
    tenant = await tenant_context(session, tenant_id)
    inflow = net_inflow(
        await repo.net_inflow(params, referral=referral), tenant.base_currency, tenant.rates, now
    )
    return CampaignReport(
        activity_id=activity.id,
        activity_code=activity.activity_code,
        kind=activity.kind,
        as_of=now,
        since=since,
        cohort="invitees" if referral else "participants",
        funnel=funnel(stages),
        net_inflow=inflow,
        cost=stats.cost,
        acquired_users=stats.acquired_users,
        cost_per_acquired_user=stats.cost_per_acquired_user,
        cost_per_first_deposit=cost_per_user(stats.cost, deposited),
        reward_service_available=stats.reward_service_available,
    )
