from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GrantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    grant_key: str = Field(examples=["3f2c…:r1:u-2002:-:once"])
    rule_id: str = Field(examples=["r1"])
    user_id: str
    counterpart_id: str | None
    task: str = Field(examples=["net_deposit"])
    achieved_at: datetime
    prize_id: uuid.UUID
    record_status: str = Field(
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
