"""The answer to "How is the campaign doing?" (SPEC §5)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from activity_service.activities.rules import ActivityKind, ActivityStatus, GrantTask

PRIZE_TYPES = ("coupon", "physical", "cash")
RECORD_STATUSES = ("pending", "issuing", "issued", "failed", "cancelled", "locked")


class Participants(BaseModel):
    users: int = Field(
        examples=[120],
        description="Distinct users who took part. Referral: users granted in it and both sides "
        "of its qualifications (an invitee's own outcomes are recorded before the inviter is "
        "known, so organic users are not counted). Basic and team: users granted in it, team "
        "initiators and helpers, and users evaluated for one of its rules whose latest outcome "
        "does not say they could not take part (`outside_window`, `no_inviter`, "
        "`not_in_segment`, `not_new_user`, `not_old_user`, `in_other_regular_activity`). "
        "Non-standard: the users with a reward record under its code",
    )
    inviters: int | None = Field(
        None,
        examples=[14],
        description="Referral activities: distinct inviters with at least one qualifying invitee",
    )
    invitees: int | None = Field(
        None,
        examples=[57],
        description="Referral activities: distinct invitees who completed a rule's task for an "
        "inviter (qualifying invitees)",
    )
    initiators: int | None = Field(
        None, examples=[40], description="Team activities: distinct users who started a team"
    )
    helpers: int | None = Field(
        None, examples=[130], description="Team activities: distinct users who helped a team"
    )


class TeamCounts(BaseModel):
    started: int = Field(examples=[40], description="Teams started")
    succeeded: int = Field(examples=[12], description="Teams that collected all their helpers")


class TaskCompletions(BaseModel):
    task: GrantTask = Field(examples=["register"], description="Task type (SPEC §1.4)")
    users: int = Field(
        examples=[57],
        description="Distinct users who completed the task inside the window. Referral: "
        "qualifying invitees of the rules with this task. Basic and team: users granted a rule "
        "with this task (team: `team_initiator`, `team_assist`), plus participants whose "
        "latest outcome of such a rule is `cap_reached`, `quantity_exhausted`, "
        "`budget_exhausted` or `already_granted`",
    )


class RewardCounts(BaseModel):
    source: Literal["reward_service", "grant_ledger"] = Field(
        description="`reward_service`: the authoritative counts of the reward records; "
        "`grant_ledger`: reward_service was unreachable, counted from the statuses it last "
        "reported back to this service (may lag, and misses rewards issued by hand)"
    )
    pending: int = 0
    issuing: int = 0
    issued: int = 0
    failed: int = 0
    cancelled: int = 0
    locked: int = Field(
        0,
        description="锁仓中: records inside their lock period — Locked ones and rewards issued "
        "at once whose lock still runs (these count under `issued` too; from the grant ledger "
        "only the Locked ones)",
    )
    all: int = Field(0, description="All reward records, whatever their status, each once")
    not_yet_recorded: int = Field(
        0,
        description="Grants decided here whose reward record is not created yet (the grant "
        "ledger's `granted` status); not part of `all`",
    )


class CurrencyAmount(BaseModel):
    currency: str = Field(examples=["USD"])
    amount: Decimal = Field(examples=["120.000000"])
    records: int = Field(examples=[3], description="Issued records summed in this amount")


class TypeCost(BaseModel):
    prize_type: Literal["coupon", "physical", "cash"] = Field(examples=["cash"])
    records: int = Field(description="Issued records of this prize type")
    amount: Decimal = Field(
        description="Cost in the tenant's base currency (only the converted part when "
        "`complete` is false)"
    )
    complete: bool = Field(
        description="False when some cost could not be converted (no FX rate) or a prize "
        "has no cost"
    )
    uncosted_records: int = Field(0, description="Issued records whose prize has no cost")
    by_currency: list[CurrencyAmount] = Field(description="Unconverted sums per currency")


class CostSummary(BaseModel):
    currency: str = Field(examples=["HKD"], description="The tenant's base currency")
    total: Decimal = Field(
        examples=["1234.500000"],
        description="Cost of the Issued rewards in the base currency (the converted part "
        "when `complete` is false)",
    )
    complete: bool
    by_type: list[TypeCost] = Field(description="coupon, physical and cash, always all three")
    unconverted: list[CurrencyAmount] = Field(
        description="Amounts left in their own currency: no FX rate to the base currency"
    )
    uncosted_records: int = Field(0, description="Issued records whose prize has no cost")


class BudgetLeft(BaseModel):
    """The activity's budget (SPEC §6 "Budgets") and what is left of it."""

    currency: str = Field(examples=["HKD"], description="The tenant's base currency")
    amount: Decimal = Field(examples=["50000"], description="The budget")
    spent: Decimal = Field(
        examples=["1200.000000"],
        description="What the grants hold: each one's prize cost at its time; a cancelled "
        "reward gives its cost back",
    )
    remaining: Decimal = Field(examples=["48800.000000"], description="amount − spent, ≥ 0")


class PrizeTotalLeft(BaseModel):
    """A prize's total quantity over the activity and what is left of it."""

    prize_id: uuid.UUID
    total_quantity: int = Field(examples=[500])
    granted: int = Field(examples=[120], description="Held by grants (cancelled ones excluded)")
    remaining: int = Field(examples=[380], description="total_quantity − granted, ≥ 0")


class ActivityStats(BaseModel):
    """SPEC §5 "How is the campaign doing?"."""

    activity_id: uuid.UUID
    activity_code: str = Field(examples=["ACT-7K2M9QXD"])
    kind: ActivityKind = Field(examples=["referral"])
    status: ActivityStatus = Field(examples=["running"])
    as_of: datetime = Field(description="When the numbers were taken (FX rates as of then)")
    participants: Participants
    completions: list[TaskCompletions] = Field(description="Per task type, sorted by task")
    teams: TeamCounts | None = Field(None, description="Team activities only")
    rewards: RewardCounts
    cost: CostSummary | None = Field(
        description="Null when reward_service was unreachable (`reward_service_available`)"
    )
    acquired_users: int = Field(
        description="Referral: qualifying invitees; other kinds: users with at least one "
        "Issued reward"
    )
    acquired_users_basis: Literal["qualifying_invitees", "rewarded_users"]
    cost_per_acquired_user: Decimal | None = Field(
        examples=["21.650000"],
        description="`cost.total / acquired_users` in the base currency; null when there is "
        "no acquired user, no cost answer, or the cost is not complete",
    )
    reward_service_available: bool = Field(
        description="False: reward counts come from the grant ledger and cost is unknown"
    )
    budget: BudgetLeft | None = Field(None, description="Null when the activity has no budget")
    prize_totals: list[PrizeTotalLeft] = Field(
        default_factory=list, description="The prizes with a total quantity"
    )


# --------------------------------------------------------------------------- campaign report


class FunnelStage(BaseModel):
    stage: Literal["invited", "took_part", "registered", "account_opened", "first_deposit"]
    users: int = Field(examples=[40])
    rate_from_previous: Decimal | None = Field(
        None,
        examples=["0.7500"],
        description="users / users of the previous stage (4 places); null for the first "
        "stage or when the previous one is empty",
    )
    rate_from_start: Decimal | None = Field(
        None, examples=["0.5000"], description="users / users of the first stage (4 places)"
    )


class CurrencyNet(BaseModel):
    currency: str = Field(examples=["USD"])
    amount: Decimal = Field(examples=["1500.000000"], description="In minus out, signed")
    users: int = Field(examples=[3], description="Users of the cohort with flows in it")


class NetInflow(BaseModel):
    currency: str = Field(examples=["HKD"], description="The tenant's base currency")
    total: Decimal = Field(
        examples=["125000.000000"],
        description="Deposits and stock transfers in minus withdrawals and stock transfers "
        "out of the cohort since the window started, in the base currency (the converted "
        "part when `complete` is false)",
    )
    complete: bool
    by_currency: list[CurrencyNet]


class CampaignReport(BaseModel):
    activity_id: uuid.UUID
    activity_code: str
    kind: ActivityKind
    as_of: datetime
    since: datetime = Field(description="Start of the window: stages and flows count from here")
    cohort: Literal["invitees", "participants"] = Field(
        description="invitees (referral): users who registered in the window with an invite "
        "code, and the invitees who qualified in this activity; participants (other kinds): "
        "the users who took part"
    )
    funnel: list[FunnelStage] = Field(
        description="A strict funnel: each stage counts the users of the previous one who "
        "also did this — registered (ever), opened an account and made their first deposit "
        "ever between the window's start and now"
    )
    net_inflow: NetInflow
    trading_volume: Decimal | None = Field(
        None, description="Null: no business event carries a trading volume yet"
    )
    cost: CostSummary | None = Field(description="As in the activity's stats")
    acquired_users: int = Field(description="As in the activity's stats")
    cost_per_acquired_user: Decimal | None = Field(description="As in the activity's stats")
    cost_per_first_deposit: Decimal | None = Field(
        None,
        description="`cost.total` / users of the first_deposit stage; null when none or the "
        "cost is incomplete",
    )
    reward_service_available: bool
