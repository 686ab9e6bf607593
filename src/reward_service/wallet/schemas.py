from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class CouponStatus(StrEnum):
    unused = "unused"
    used = "used"
    expired = "expired"


class CouponRead(BaseModel):
    id: uuid.UUID
    user_id: str
    record_id: uuid.UUID
    prize_id: uuid.UUID
    coupon_type: str = Field(examples=["market_data"])
    title: dict[str, Any] = Field(examples=[{"en": "Market data card", "zh-Hans": "行情卡"}])
    instructions: str
    status: CouponStatus
    valid_from: datetime | None
    expires_at: datetime | None
    used_at: datetime | None
    created_at: datetime
