from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from service_kit.money import Amount, Currency


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


class EventIn(BaseModel):
    event_id: str = Field(min_length=1, max_length=128, examples=["evt-20261123-0001"])
    type: EventType = Field(examples=["user.registered"])
    user_id: str = Field(min_length=1, max_length=128, examples=["u-2002"])
    app_id: str = Field(min_length=1, max_length=64, examples=["broker-app"])
    occurred_at: datetime = Field(examples=["2026-12-02T09:30:00+08:00"])
    amount: Amount | None = Field(None, description="Money events: a positive decimal string")
    currency: Currency | None = None
    device_id: str | None = Field(None, max_length=128, description="app.login")
    invite_code: str | None = Field(None, max_length=20, description="user.registered")
    enterprise_id: str | None = Field(None, max_length=128, description="enterprise.certified")
    enterprise_name: str | None = Field(None, max_length=200)
    nickname: str | None = Field(None, max_length=64)
    phone: str | None = Field(None, max_length=32)

    @model_validator(mode="after")
    def _fields_of_type(self) -> EventIn:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at needs a time zone offset")
        if self.type in MONEY_EVENTS:
            if self.amount is None or self.currency is None:
                raise ValueError(f"{self.type.value} needs amount and currency")
        elif self.amount is not None or self.currency is not None:
            raise ValueError(f"{self.type.value} carries no amount")
        if self.type is EventType.app_login and not self.device_id:
            raise ValueError("app.login needs device_id")
        if self.type is EventType.enterprise_certified and not self.enterprise_id:
            raise ValueError("enterprise.certified needs enterprise_id")
        return self


class EventAck(BaseModel):
    event_id: str
    status: str = Field(examples=["accepted"], description="accepted, or duplicate on a replay")
    received_at: datetime
