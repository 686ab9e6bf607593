from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from reward_service.prizes.schemas import CouponType


class CouponStatus(StrEnum):
    unused = "unused"
    used = "used"
    expired = "expired"


class CouponRead(BaseModel):
    id: uuid.UUID
    user_id: str
    record_id: uuid.UUID
    code: str = Field(
        examples=["7KQ2M9XDHR4P"], description="Redemption code, unique in the tenant"
    )
    prize_id: uuid.UUID
    coupon_type: CouponType = Field(examples=["market_data"])
    title: dict[str, Any] = Field(examples=[{"en": "Market data card", "zh-Hans": "行情卡"}])
    title_text: str | None = Field(
        None, examples=["行情卡"], description="`title` in the Accept-Language language"
    )
    title_language: str | None = Field(
        None, examples=["zh-Hans"], description="The language `title_text` is actually in"
    )
    activity_code: str | None = Field(None, description="The activity that gave it")
    activity_name: str | None = Field(None, description="In the Accept-Language language")
    activity_name_language: str | None = Field(
        None, description="The language `activity_name` is actually in"
    )
    instructions: str
    status: CouponStatus
    valid_from: datetime | None
    expires_at: datetime | None
    used_at: datetime | None
    used_by: str | None = Field(
        None, examples=["service:broker-pos"], description="Who marked it used"
    )
    used_reference: str | None = Field(
        None, examples=["ORDER-88123"], description="The reference given when it was used"
    )
    created_at: datetime


class CouponUse(BaseModel):
    """Mark a coupon used. The same caller sending the same reference again gets the same
    answer (a replay); another reference for a used coupon is `409 coupon_used`."""

    reference: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        examples=["ORDER-88123"],
        description="The caller's own reference for this use (an order or ticket id)",
    )
