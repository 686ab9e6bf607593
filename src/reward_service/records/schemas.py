from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.payloads import IssuanceForm
from reward_service.payouts.schemas import CashPayoutRead
from reward_service.prizes.schemas import PrizeType
from reward_service.records.state import RecordStatus
from reward_service.shipments.schemas import ShipmentRead
from reward_service.wallet.schemas import CouponRead


class TransitionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: RecordStatus | None
    to_status: RecordStatus
    action: str = Field(examples=["submit"])
    actor: str = Field(examples=["operator:alice"])
    reason: str | None
    at: datetime


class RewardRecordRead(BaseModel):
    """One line of the winners list (SPEC §3.2)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: str = Field(examples=["RR-20261123-00000042"], description="Reward record number")
    activity_code: str = Field(examples=["ACT-7K2M9QXD"])
    activity_name: str | None = Field(None, examples=["Sign-up gift"])
    grant_key: str = Field(description="The deterministic key of the grant it came from")
    rule_id: str | None = None
    user_id: str = Field(examples=["u-1001"], description="The user the reward is for")
    app_id: str | None = None
    counterpart_id: str | None = Field(description="Inviter or invitee, for referral rewards")
    enterprise_name: str | None = Field(
        description="企业认证: the enterprise the user is certified for (their latest "
        "certification), whatever the task; null if none"
    )
    task: str = Field(examples=["register"], description="The task achieved")
    achieved_at: datetime = Field(description="When the task was achieved")
    prize_id: uuid.UUID
    prize_type: PrizeType = Field(examples=["coupon"])
    prize_name: str | None = Field(None, examples=["30-day market data"])
    issuance_form: IssuanceForm = Field(examples=["automatic"])
    status: RecordStatus
    issued_at: datetime | None = Field(description="When the reward reached the user")
    issued_to: str | None = Field(
        description="发放账户: the account actually paid — for cash, the account the cash "
        "system credited (the user id if it named none); for coupons and items, the user"
    )
    lock_amount: Decimal | None = Field(description="Lock-up amount (SPEC §3.3)")
    lock_currency: str | None = Field(examples=["HKD"])
    lock_days: int | None = Field(description="Lock-up period in days")
    lock_started_at: datetime | None = None
    lock_expires_at: datetime | None = Field(
        description="Reward arrival + lock period: from the record's creation when the reward "
        "waits Locked, from its issue when it is issued at once (null until then)"
    )
    lock_issue_after: bool | None = Field(
        None, description="Whether the reward is issued only after the lock-up"
    )
    lock_result: Literal["held", "broken"] | None = Field(
        None,
        description="The lock-up check at expiry; null while the lock runs (or without one). "
        "`broken` on an Issued record flags a reward issued at once whose lock was not kept",
    )
    lock_settled_at: datetime | None = Field(None, description="When the lock was checked")
    lock_detail: str | None = Field(
        None, description="Why the lock counts as broken", examples=["lock_broken: ..."]
    )
    failure_reason: str | None = Field(
        description="Why it failed or was cancelled", examples=["out_of_stock"]
    )
    created_at: datetime
    updated_at: datetime


class RewardRecordDetail(RewardRecordRead):
    """A record with its full history and what its fulfilment produced (SPEC §5: "a user
    says they did not get a reward")."""

    transitions: list[TransitionRead]
    coupon: CouponRead | None = Field(None, description="The wallet entry of a coupon prize")
    shipment: ShipmentRead | None = Field(None, description="The shipment of a physical prize")
    payout: CashPayoutRead | None = Field(
        None, description="The cash payment of a cash prize: attempts, answer, payment id"
    )


class RecordStats(BaseModel):
    activity_code: str | None
    pending: int = 0
    issuing: int = 0
    issued: int = 0
    failed: int = 0
    cancelled: int = 0
    locked: int = Field(
        0,
        description="锁仓中: records inside their lock period — Locked ones and rewards issued "
        "at once whose lock still runs (these count under `issued` too)",
    )
    all: int = Field(0, description="Every record once, whatever its status")


class IssuedCost(BaseModel):
    """The cost of the Issued records of one prize type in one currency."""

    prize_type: PrizeType = Field(examples=["cash"])
    currency: str | None = Field(
        examples=["HKD"], description="Null: prizes without a cost (counted in `records` only)"
    )
    records: int = Field(examples=[12], description="Issued records in this group")
    amount: Decimal | None = Field(
        examples=["1200.000000"],
        description="Summed cost: the amount paid for cash, the prize's cost otherwise",
    )


class RecordCosts(BaseModel):
    """What an activity's rewards cost (SPEC §5 "How is the campaign doing?")."""

    activity_code: str = Field(examples=["ACT-7K2M9QXD"])
    issued: list[IssuedCost] = Field(description="Per prize type and currency")
    users: int = Field(description="Distinct users with a record in any status")
    issued_users: int = Field(description="Distinct users with at least one Issued record")


class MyRewardRead(BaseModel):
    """A reward record as the app shows it to its own user."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: str = Field(examples=["RR-20261123-00000042"])
    activity_code: str
    activity_name: str | None = Field(None, description="In the Accept-Language language")
    activity_name_language: str | None = Field(
        None, examples=["zh-Hant"], description="The language `activity_name` is actually in"
    )
    task: str
    achieved_at: datetime
    prize_id: uuid.UUID
    prize_type: PrizeType = Field(examples=["physical"])
    prize_name: str | None = Field(
        None, description="The prize's title in the Accept-Language language"
    )
    prize_name_language: str | None = Field(
        None, examples=["en"], description="The language `prize_name` is actually in"
    )
    status: RecordStatus
    issued_at: datetime | None
    lock_expires_at: datetime | None
    failure_reason: str | None
    coupon_id: uuid.UUID | None = Field(None, description="The wallet entry, once issued")
    shipment_id: uuid.UUID | None = Field(
        None, description="The shipment, once issued: give the shipping address on it"
    )


class MoveRequest(BaseModel):
    reason: str | None = Field(None, max_length=500, examples=["customer not eligible"])


class InvitationTotal(BaseModel):
    prize_type: PrizeType = Field(examples=["cash"])
    currency: str | None = Field(
        description="Currency of the values (none when the prize has no value set)",
        examples=["HKD"],
    )
    records: int = Field(description="Rewards earned (cancelled ones left out)", examples=[4])
    issued: int = Field(description="Of those, already issued", examples=[3])
    amount: Decimal | None = Field(
        description="Value of the rewards earned: cash paid or due; coupons and physical "
        "items at the prize's value",
        examples=["400.00"],
    )
    issued_amount: Decimal | None = Field(description="Value of the issued ones")


class InvitationTotals(BaseModel):
    """What the calling user earned by inviting (their rewards as an inviter)."""

    user_id: str = Field(examples=["u-1001"])
    invitees_rewarded: int = Field(
        description="Distinct invitees the rewards were earned for (bonus rewards of a tier "
        "are for the inviter's count, not an invitee)",
        examples=[3],
    )
    totals: list[InvitationTotal] = Field(description="Per prize type and currency")
