from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ReferralTenantSettingsRead(BaseModel):
    registration_bind_grace_hours: int = Field(
        description="How long after registering a user may still enter an invite code",
        examples=[72],
    )
    is_default: bool = Field(description="True while the tenant has not set its own value")
    version: int = Field(
        0, description="Also the ETag (0 while the defaults apply); send it back in If-Match"
    )
    updated_by: str | None = Field(None, examples=["operator:ops-1"])
    updated_at: datetime | None = Field(None, description="When it was last set")


class ReferralTenantSettingsUpdate(BaseModel):
    registration_bind_grace_hours: int = Field(
        ge=0,
        le=24 * 365,
        description="0 closes self-binding as soon as the registration is recorded",
        examples=[72],
    )
