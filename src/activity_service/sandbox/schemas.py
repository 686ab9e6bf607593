from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, field_validator


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("needs a time zone offset")
    return value


class SandboxCreate(BaseModel):
    starts_at: datetime | None = Field(
        None,
        description="Where the tenant's clock starts (default: now). It then stands still "
        "until advanced.",
        examples=["2026-11-01T00:00:00+08:00"],
    )

    _check = field_validator("starts_at")(_aware)


class SandboxAdvance(BaseModel):
    to: datetime = Field(
        description="The time to advance to; never before the clock's current time. The "
        "same call again (or to the current time) changes nothing.",
        examples=["2026-11-05T00:00:00+08:00"],
    )
    wait_seconds: float = Field(
        60.0,
        ge=0,
        le=300,
        description="How long to wait for the effects before answering 202 (still "
        "advancing: call again with the same `to`, or poll GET /v1/sandbox/clock)",
    )

    _check = field_validator("to")(_aware)


class ClockStatus(StrEnum):
    idle = "idle"
    advancing = "advancing"


class SandboxClockRead(BaseModel):
    tenant_id: str = Field(examples=["qa-tenant-1"])
    now: datetime = Field(description="The tenant's current time; every time-driven rule uses it")
    status: ClockStatus = Field(
        description="`advancing` while an advance has not finished its effects"
    )
    advancing_to: datetime | None = Field(None, description="The target of that advance")
    created_at: datetime
