from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

from service_kit.money import Currency, decimal_string, decimal_text

DEFAULT_TIME_ZONE = "Asia/Hong_Kong"
DEFAULT_BASE_CURRENCY = "HKD"

Rate = Annotated[
    Decimal,
    BeforeValidator(decimal_text),
    Field(gt=0, max_digits=24, decimal_places=10),
    PlainSerializer(lambda v: format(v.normalize(), "f"), return_type=str, when_used="json"),
    decimal_string("7.8125"),
]


class TenantSettingsIn(BaseModel):
    time_zone: str = Field(
        DEFAULT_TIME_ZONE,
        description="IANA time zone of the daily cut-off (days of flows, daily run, T+1)",
        examples=["Asia/Hong_Kong"],
    )
    base_currency: Currency = Field(DEFAULT_BASE_CURRENCY, description="Base currency")
    daily_run_at: str = Field(
        "00:30",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local time (HH:MM) after which the previous day is evaluated",
        examples=["00:30"],
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class TenantSettingsRead(TenantSettingsIn):
    tenant_id: str = Field(examples=["tenant-a"])
    version: int = Field(
        description="Also the ETag (0 while the defaults apply); send it back in If-Match"
    )
    updated_at: datetime | None = Field(None, description="null while the defaults apply")


class FxRateIn(BaseModel):
    source: Currency = Field(description="1 unit of this currency …", examples=["USD"])
    target: Currency = Field(description="… is worth `rate` units of this one", examples=["HKD"])
    rate: Rate
    effective_at: datetime = Field(
        description="The rate applies to flows at or after this time, until a later one",
        examples=["2026-11-01T00:00:00+08:00"],
    )

    @field_validator("effective_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("effective_at needs a time zone offset")
        return value


class FxRatesIn(BaseModel):
    rates: list[FxRateIn] = Field(min_length=1, max_length=500)


class FxRateRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source: str = Field(examples=["USD"])
    target: str = Field(examples=["HKD"])
    rate: Rate
    effective_at: datetime
    created_by: str
    created_at: datetime
