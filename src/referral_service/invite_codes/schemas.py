from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class InviteCodeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str = Field(
        description="8 characters without look-alikes (no 0/O, 1/I/L, U)", examples=["K7M2XQ9D"]
    )
    user_id: str = Field(description="The code's owner", examples=["u-1001"])
    app_id: str = Field(description="The app the code belongs to", examples=["broker-app"])
    created_at: datetime = Field(description="When the code was first requested")
