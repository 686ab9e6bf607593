from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts.payloads import IssuanceForm
from reward_service.center.rules import MAX_QUANTITY, BatchStatus, IssuanceStatus
from reward_service.prizes.schemas import PrizeType
from reward_service.records.state import RecordStatus


class IssuanceCreate(BaseModel):
    """Give a prize by hand to one user under an activity code (SPEC §3.4)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "activity_code": "ACT-7K2M9QXD",
                    "user_id": "u-10001",
                    "prize_id": "6f1c2d1e-8a43-4b0e-9a53-0c8e6f3b1a27",
                    "quantity": 1,
                    "remarks": "VIP complaint #4471, goodwill gift",
                }
            ]
        },
    )

    activity_code: str = Field(
        min_length=1, max_length=32, description="Code of an activity of this tenant"
    )
    user_id: str = Field(min_length=1, max_length=128, description="The end user rewarded")
    prize_id: uuid.UUID = Field(description="A prize of this tenant")
    quantity: int = Field(
        1, ge=1, le=MAX_QUANTITY, description="How many of the prize; one reward record each"
    )
    app_id: str | None = Field(None, max_length=64, description="The user's app, if known")
    counterpart_id: str | None = Field(
        None, max_length=128, description="Inviter or invitee shown on the record"
    )
    remarks: str | None = Field(None, max_length=500, description="Operator memo")


class ReviewDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        None, max_length=500, description="Why (required to reject)", examples=["Wrong user"]
    )


class RecordRef(BaseModel):
    """A reward record created by an issuance, with its current status."""

    id: uuid.UUID
    number: str = Field(examples=["RR-20261123-00000042"])
    status: RecordStatus = Field(
        examples=["issued"], description="The record's current status (§3.2)"
    )


class IssuanceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    batch_id: uuid.UUID | None = Field(description="The batch file it came from, if any")
    line: int | None = Field(description="Line of the batch file (header excluded)")
    activity_code: str = Field(examples=["ACT-7K2M9QXD"])
    activity_name: str | None
    review_required: bool = Field(description="The activity's review mode when issued")
    issuance_form: IssuanceForm = Field(description="automatic or manual, from the activity")
    user_id: str
    app_id: str | None
    counterpart_id: str | None
    prize_id: uuid.UUID
    prize_name: str | None
    prize_type: PrizeType = Field(examples=["coupon"])
    quantity: int
    remarks: str | None
    status: IssuanceStatus = Field(
        description="awaiting_review, approved (records created or being created), rejected"
    )
    submitter: str = Field(examples=["operator:ops-1"])
    reviewer: str | None = Field(examples=["operator:ops-2"])
    reviewed_at: datetime | None
    reject_reason: str | None
    created_at: datetime
    updated_at: datetime
    records: list[RecordRef] = Field(
        default_factory=list, description="Its reward records, once created"
    )


class LineOutcome(StrEnum):
    accepted = "accepted"
    rejected = "rejected"


class BatchLineRead(BaseModel):
    line: int = Field(description="1-based data line (the header is not counted)")
    user_id: str
    prize_id: str
    activity_code: str
    quantity: int
    outcome: LineOutcome
    code: str | None = Field(None, examples=["prize_not_found"], description="Why rejected")
    detail: str | None = None
    issuance_id: uuid.UUID | None = None
    issuance_status: IssuanceStatus | None = None
    records: list[RecordRef] = Field(default_factory=list)


class BatchRead(BaseModel):
    id: uuid.UUID
    activity_code: str | None = Field(description="The batch-wide activity code, if given")
    file_name: str | None
    status: BatchStatus = Field(
        description="awaiting_review (some lines wait for approval), approved, rejected"
    )
    line_count: int
    accepted: int
    rejected: int
    submitter: str
    reviewer: str | None
    reviewed_at: datetime | None
    reject_reason: str | None
    created_at: datetime
    lines: list[BatchLineRead] = Field(
        default_factory=list, description="Every line in file order (omitted in lists)"
    )
