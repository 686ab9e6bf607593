from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service_kit.money import Amount, Currency

MAX_BATCH = 1000


class EventType(StrEnum):
    user_registered = "user.registered"
    app_login = "app.login"
    account_opened = "account.opened"
    cash_deposited = "cash.deposited"
    cash_withdrawn = "cash.withdrawn"
    stock_transferred_in = "stock.transferred_in"
    stock_transferred_out = "stock.transferred_out"
    enterprise_certified = "enterprise.certified"


MONEY_EVENTS = frozenset(
    {
        EventType.cash_deposited,
        EventType.cash_withdrawn,
        EventType.stock_transferred_in,
        EventType.stock_transferred_out,
    }
)


class RegistrationChannel(StrEnum):
    invite_code = "invite_code"
    share_link = "share_link"


class EventIn(BaseModel):
    """A business event. Which optional fields are required depends on ``type``:
    money events (cash.*, stock.*) need ``amount`` + ``currency`` (stock transfers carry
    their market value), ``app.login`` needs ``device_id``, ``enterprise.certified`` needs
    ``enterprise_id``; fields that do not belong to the type are refused."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        min_length=1,
        max_length=128,
        description="Unique per tenant: a replay with the same id changes nothing",
        examples=["evt-20261123-0001"],
    )
    type: EventType = Field(examples=["cash.deposited"])
    user_id: str = Field(min_length=1, max_length=128, examples=["u-2002"])
    app_id: str = Field(min_length=1, max_length=64, examples=["broker-app"])
    occurred_at: datetime = Field(
        description="When it happened, with a time zone offset",
        examples=["2026-12-02T09:30:00+08:00"],
    )
    amount: Amount | None = Field(None, description="Money events: a positive decimal string")
    currency: Currency | None = Field(None, description="Money events: ISO 4217 code")
    device_id: str | None = Field(
        None, min_length=1, max_length=128, description="app.login: the device's stable id"
    )
    invite_code: str | None = Field(
        None, max_length=20, description="user.registered: the code the user came with"
    )
    channel: RegistrationChannel | None = Field(
        None,
        description="user.registered: how the invite code came (`share_link`: an activity's "
        "share link carrying the sharer's code; default `invite_code`)",
    )
    activity_code: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="user.registered with channel `share_link`: the shared activity",
        examples=["A20261123001"],
    )
    enterprise_id: str | None = Field(
        None, min_length=1, max_length=128, description="enterprise.certified"
    )
    enterprise_name: str | None = Field(None, max_length=200, description="enterprise.certified")
    nickname: str | None = Field(None, max_length=64, examples=["Ada"])
    phone: str | None = Field(None, max_length=32, examples=["+85291234567"])

    @model_validator(mode="after")
    def _fields_of_type(self) -> EventIn:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at needs a time zone offset")
        if self.type in MONEY_EVENTS:
            if self.amount is None or self.currency is None:
                raise ValueError(f"{self.type.value} needs amount and currency")
        elif self.amount is not None or self.currency is not None:
            raise ValueError(f"{self.type.value} carries no amount or currency")
        if self.type is EventType.app_login:
            if not self.device_id:
                raise ValueError("app.login needs device_id")
        elif self.device_id is not None:
            raise ValueError(f"{self.type.value} carries no device_id")
        if self.type is EventType.enterprise_certified:
            if not self.enterprise_id:
                raise ValueError("enterprise.certified needs enterprise_id")
        elif self.enterprise_id is not None or self.enterprise_name is not None:
            raise ValueError(f"{self.type.value} carries no enterprise fields")
        if self.type is not EventType.user_registered:
            if self.invite_code is not None or self.channel or self.activity_code:
                raise ValueError(f"{self.type.value} carries no invite_code, channel or activity")
        elif self.channel is RegistrationChannel.share_link:
            if not self.invite_code or not self.activity_code:
                raise ValueError("a share_link registration needs invite_code and activity_code")
        elif self.activity_code is not None:
            raise ValueError("activity_code names a share link: channel share_link only")
        return self


class EventAck(BaseModel):
    event_id: str = Field(examples=["evt-20261123-0001"])
    status: Literal["accepted", "duplicate"] = Field(
        examples=["accepted"], description="accepted, or duplicate on a replay"
    )
    received_at: datetime = Field(description="When the event was first stored")


class EventBatchIn(BaseModel):
    events: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"Up to {MAX_BATCH} events, each shaped like `EventIn`; each is "
        "validated and stored on its own, so one bad item does not refuse the others.",
        json_schema_extra={"items": {"$ref": "#/components/schemas/EventIn"}},
    )


class BatchItemResult(BaseModel):
    index: int = Field(description="Position of the item in the request", examples=[0])
    event_id: str | None = Field(examples=["evt-20261123-0001"])
    status: Literal["accepted", "duplicate", "rejected"] = Field(
        description="accepted | duplicate (stored before, same content) | rejected",
        examples=["accepted"],
    )
    received_at: datetime | None = Field(None, description="When the event was first stored")
    problem: dict[str, Any] | None = Field(
        None,
        description="For rejected items: a problem object (`code`, `detail`, `errors`)",
        examples=[{"code": "validation_error", "detail": "amount: needs amount and currency"}],
    )


class EventBatchResult(BaseModel):
    accepted: int = Field(examples=[998])
    duplicates: int = Field(examples=[1])
    rejected: int = Field(examples=[1])
    items: list[BatchItemResult]
