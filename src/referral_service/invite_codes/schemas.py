from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class InviteCodeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str = Field(examples=["K7M2XQ9D"])
    user_id: str = Field(examples=["u-1001"])
    app_id: str = Field(examples=["broker-app"])
    created_at: datetime
