from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from reward_service.records.state import RecordStatus


class TransitionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: RecordStatus | None
    to_status: RecordStatus
    action: str = Field(examples=["submit"])
    actor: str = Field(examples=["operator:alice"])
    reason: str | None
    at: datetime


class RewardRecordRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: str = Field(examples=["RR-20261123-00000042"])
    activity_code: str = Field(examples=["ACT-7K2M9QXD"])
    grant_key: str
    user_id: str
    counterpart_id: str | None
    enterprise_name: str | None
    task: str = Field(examples=["register"])
    achieved_at: datetime
    prize_id: uuid.UUID
    prize_type: str = Field(examples=["coupon"])
    issuance_form: str = Field(examples=["automatic"])
    status: RecordStatus
    issued_at: datetime | None
    issued_to: str | None
    lock_amount: Decimal | None
    lock_currency: str | None
    lock_days: int | None
    lock_expires_at: datetime | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


class RewardRecordDetail(RewardRecordRead):
    transitions: list[TransitionRead]


class RecordStats(BaseModel):
    activity_code: str | None
    pending: int = 0
    issuing: int = 0
    issued: int = 0
    failed: int = 0
    cancelled: int = 0
    locked: int = 0
    all: int = 0


class MoveRequest(BaseModel):
    reason: str | None = Field(None, max_length=500, examples=["customer not eligible"])
