from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from activity_service.activities.rules import GrantTask


class GrantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    grant_key: str = Field(examples=["3f2c…:r1:u-2002:-:once"])
    rule_id: str = Field(examples=["r1"])
    user_id: str
    counterpart_id: str | None
    task: GrantTask = Field(examples=["net_deposit"])
    achieved_at: datetime
    prize_id: uuid.UUID
    record_status: Literal[
        "granted", "pending", "locked", "issuing", "issued", "failed", "cancelled"
    ] = Field(
        description="The reward record's status as last reported; `granted` until created",
        examples=["issued"],
    )
    record_number: str | None = Field(examples=["RR-20261123-00000042"])
    created_at: datetime


class OutcomeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    rule_id: str = Field(examples=["r1"])
    outcome: str = Field(
        description="granted | already_granted | cap_reached | quantity_exhausted | "
        "budget_exhausted | no_prize_cost | not_in_segment | not_new_user "
        "| not_old_user | task_not_completed | outside_window | no_inviter | "
        "in_other_regular_activity | beyond_last_range | no_fx_rate | "
        "tier_changed_after_settlement (an at-end activity paid another tier; no second "
        "reward) | device_seen_before (download: every device the user logged in on was "
        "first used by another account) | awaiting_daily_run (flows stored, decided by the "
        "run due at `due_at`) | after_last_run",
        examples=["cap_reached"],
    )
    detail: str | None
    at: datetime
    current: bool = Field(
        True,
        description="False when a later fact (a grant of the rule, an event queued for "
        "evaluation, flows waiting for a run) makes this outcome stale",
    )
    superseded_by: str | None = Field(None, description="What made the outcome stale")
    due_at: datetime | None = Field(
        None, description="`awaiting_daily_run`: when the run that decides it is due"
    )


class Explanation(BaseModel):
    activity_id: uuid.UUID
    activity_code: str
    user_id: str
    status_hint: str = Field(
        description="A one-line answer for the operator", examples=["1 grant; see outcomes"]
    )
    rules: list[dict[str, Any]] = Field(description="The activity's rules as configured")
    grants: list[GrantRead]
    credited: list[GrantRead] = Field(
        default_factory=list,
        description="Rewards this user's tasks earned their inviter (referral activities)",
    )
    outcomes: list[OutcomeRead] = Field(
        description="The latest evaluation outcome per rule, including why nothing was granted"
    )


class InvitationTotals(BaseModel):
    inviter_id: str = Field(examples=["u-1001"])
    regular: int = Field(
        description="Qualifying invitees in regular referral activities: the cumulative "
        "invitation total shown to the user",
        examples=[12],
    )
    marketing: int = Field(
        description="Qualifying invitees in marketing activities (not counted in the total)",
        examples=[3],
    )
    regular_activity_id: uuid.UUID | None = Field(
        description="The regular referral activity the inviter currently takes part in"
    )


class DayRerun(BaseModel):
    """What an operator's re-run of a day changed."""

    day: date = Field(examples=["2026-11-22"])
    started_at: datetime
    finished_at: datetime
    grants_made: int = Field(
        description="Grants the re-run made (0 when the day's decisions stand as they were)"
    )
    grants: list[GrantRead] = Field(
        description="Those grants (the first 1,000); none is ever made twice"
    )
    truncated: bool = Field(description="More grants were made than listed")


class DryRunIn(BaseModel):
    starts_at: datetime = Field(
        description="Start of the past period replayed (stands in for the activity's window)",
        examples=["2026-10-01T00:00:00+08:00"],
    )
    ends_at: datetime = Field(
        description="End of the period (exclusive, not in the future, at most 92 days on)",
        examples=["2026-11-01T00:00:00+08:00"],
    )
    user_limit: int = Field(
        10_000,
        ge=1,
        le=100_000,
        description="At most this many users with events in the period (the first by id; "
        "referral activities: invitees)",
    )
    show: Literal["granted", "refused"] = Field(
        "granted",
        description="Which list `items` pages through: the would-be grants, or the rewards "
        "users completed but would not have been granted, with the reason",
    )
    limit: int = Field(100, ge=1, le=1000, description="Items listed per page")
    cursor: str | None = Field(None, description="`next_cursor` of the previous page")

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone offset")
        return value


class DryRunItem(BaseModel):
    user_id: str = Field(examples=["u-2002"])
    rule_id: str = Field(
        description="The rule (referral: `<rule>:invitee` for the invitee's prize, "
        "`<rule>:<tier>` and `<rule>:<tier>:bonus` for a tiered inviter's)",
        examples=["d50k"],
    )
    prize_id: uuid.UUID | None = Field(description="Null when no prize was reached")
    task: str = Field(examples=["deposit_reached"])
    achieved_at: datetime
    counterpart_id: str | None = Field(
        None,
        description="Referral: the invitee of an inviter's reward, the inviter of an invitee's",
    )
    referral_role: str | None = Field(None, description="Referral: inviter | invitee")
    outcome: str = Field(
        description="granted, or why not: cap_reached | quantity_exhausted | budget_exhausted "
        "| no_prize_cost | no_fx_rate | not_in_segment | not_new_user | not_old_user | "
        "no_inviter | in_other_regular_activity | beyond_last_range",
        examples=["granted"],
    )
    detail: str | None = Field(None, examples=["per_user_cap 1"])


class PrizeCostRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    prize_id: uuid.UUID
    grants: int
    unit_amount: Decimal | None = Field(description="The prize's cost (cash: its amount)")
    currency: str | None = Field(examples=["HKD"])
    total_base: Decimal | None = Field(
        description="grants × cost in the base currency; null without a cost or an FX rate"
    )


class LimitBitten(BaseModel):
    limit: Literal["per_user_cap", "total_quantity", "budget"] = Field(
        description="per_user_cap: times one user may receive the prize in this activity; "
        "total_quantity: the prize's total over the activity; budget: the activity's total "
        "budget (grants' costs converted at their achievement)"
    )
    prize_id: uuid.UUID | None = Field(description="The prize limited (null for the budget)")
    value: Decimal = Field(description="The limit: a count, or the budget's amount")
    currency: str | None = Field(None, description="The budget's currency")
    refused: int = Field(description="Grants the limit would have refused")
    users: int = Field(description="Users it would have refused a grant")
    first_refused_at: datetime = Field(description="The achievement it first refused")
    first_users: list[str] = Field(
        description="The first users it refused (up to 10; `show: refused` lists every one)"
    )


class DryRunRead(BaseModel):
    activity_id: uuid.UUID
    kind: str = Field(examples=["referral"])
    starts_at: datetime
    ends_at: datetime
    users_evaluated: int = Field(description="Users with events in the period that were decided")
    users_truncated: bool = Field(description="More users had events; only `user_limit` decided")
    grants_total: int = Field(description="Rewards the activity would have granted")
    users_rewarded: int
    refusals_total: int = Field(description="Completed rewards that would not have been granted")
    base_currency: str = Field(examples=["HKD"])
    cost_total: Decimal = Field(description="Total cost in the base currency (known costs)")
    cost_complete: bool = Field(description="False when a prize has no cost or no FX rate")
    costs: list[PrizeCostRead]
    budget_spent: Decimal | None = Field(
        description="What the grants would have taken from the budget (none without one)"
    )
    caps: list[LimitBitten] = Field(
        description="Limits that would have bitten: per-user caps, total quantities, budget"
    )
    refused: dict[str, int] = Field(
        description="Rewards not granted, per reason (cap_reached, quantity_exhausted, "
        "budget_exhausted, no_prize_cost, not_in_segment, not_new_user, not_old_user, "
        "no_inviter, in_other_regular_activity, beyond_last_range; no_fx_rate also counts "
        "tasks that could not be decided)"
    )
    show: str = Field(description="The list `items` pages through: granted or refused")
    items: list[DryRunItem] = Field(description="One page of that list, per user in time order")
    next_cursor: str | None
