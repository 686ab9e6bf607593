from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from service_kit.money import Amount, Currency

CouponType = Literal["market_data", "commission_free", "cash_voucher", "other"]


class PrizeType(StrEnum):
    coupon = "coupon"
    physical = "physical"
    cash = "cash"


class I18nText(BaseModel):
    """Text in the three languages; at least one is required, missing ones fall back
    (zh-Hans ↔ zh-Hant, then en; en → zh-Hant → zh-Hans), as activity names do."""

    model_config = ConfigDict(populate_by_name=True)

    zh_hans: str | None = Field(None, alias="zh-Hans", max_length=200, examples=["行情卡"])
    zh_hant: str | None = Field(None, alias="zh-Hant", max_length=200, examples=["行情卡"])
    en: str | None = Field(None, max_length=200, examples=["Market data card"])

    @model_validator(mode="after")
    def _at_least_one(self) -> I18nText:
        if not (self.zh_hans or self.zh_hant or self.en):
            raise ValueError("give the text in at least one of zh-Hans, zh-Hant, en")
        return self

    def best(self) -> str:
        return self.en or self.zh_hans or self.zh_hant or ""


class CouponValidity(BaseModel):
    """Either N days from issue, or a fixed date range."""

    days_from_issue: int | None = Field(None, ge=1, le=3650, examples=[30])
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    @model_validator(mode="after")
    def _one_form(self) -> CouponValidity:
        fixed = self.valid_from is not None or self.valid_until is not None
        if (self.days_from_issue is None) == (not fixed):
            if self.days_from_issue is None:
                raise ValueError("give days_from_issue or valid_from + valid_until")
            raise ValueError("give either days_from_issue or a fixed range, not both")
        if fixed:
            if self.valid_from is None or self.valid_until is None:
                raise ValueError("a fixed range needs both valid_from and valid_until")
            if self.valid_until <= self.valid_from:
                raise ValueError("valid_until must be after valid_from")
        return self


class CouponPrizeCreate(BaseModel):
    type: Literal["coupon"]
    name: str = Field(min_length=1, max_length=200, examples=["30-day HK L2 market data"])
    coupon_type: CouponType = Field(examples=["market_data"])
    title: I18nText
    validity: CouponValidity
    instructions: str = Field("", max_length=2000, examples=["Activate in Me › Cards"])
    rules: dict[str, Any] = Field(
        default_factory=dict, description="Coupon rule fields (market, scope...)"
    )
    cost_amount: Amount | None = None
    cost_currency: Currency | None = None


class PhysicalPrizeCreate(BaseModel):
    type: Literal["physical"]
    name: str = Field(min_length=1, max_length=200, examples=["Branded umbrella"])
    title: I18nText | None = Field(
        None, description="What the user reads, per language; without it they read `name`"
    )
    description: str = Field("", max_length=2000)
    image_url: HttpUrl | None = Field(None, examples=["https://cdn.example.com/umbrella.png"])
    stock: int = Field(ge=0, le=10_000_000, examples=[500])
    cost_amount: Amount | None = None
    cost_currency: Currency | None = None


class CashPrizeCreate(BaseModel):
    type: Literal["cash"]
    name: str = Field(min_length=1, max_length=200, examples=["HKD 100 cash reward"])
    title: I18nText | None = Field(
        None, description="What the user reads, per language; without it they read `name`"
    )
    amount: Amount
    currency: Currency


PrizeCreate = Annotated[
    CouponPrizeCreate | PhysicalPrizeCreate | CashPrizeCreate, Field(discriminator="type")
]


class PrizeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: PrizeType
    name: str
    details: dict[str, Any]
    stock: int | None
    cost_amount: Decimal | None
    cost_currency: str | None
    version: int = Field(description="Also the ETag; send it back in If-Match to edit")
    created_at: datetime
    updated_at: datetime


COUPON_FIELDS = {"coupon_type", "title", "validity", "instructions", "rules"}
PHYSICAL_FIELDS = {"title", "description", "image_url", "stock", "stock_delta"}
CASH_FIELDS = {"title", "amount", "currency"}


class PrizeUpdate(BaseModel):
    """Edit a prize; only the fields sent change, and only those of the prize's type.

    Stock: `stock` sets it, `stock_delta` adjusts it atomically (e.g. +100 after a
    delivery, -5 for damaged items) and never below zero. Records already issued keep what
    they got; the change applies to issues from now on.
    """

    name: str | None = Field(None, min_length=1, max_length=200)
    coupon_type: CouponType | None = None
    title: I18nText | None = None
    validity: CouponValidity | None = None
    instructions: str | None = Field(None, max_length=2000)
    rules: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=2000)
    image_url: HttpUrl | None = None
    stock: int | None = Field(None, ge=0, le=10_000_000, examples=[500])
    stock_delta: int | None = Field(
        None, ge=-10_000_000, le=10_000_000, examples=[100], description="Atomic adjustment"
    )
    amount: Amount | None = None
    currency: Currency | None = None
    cost_amount: Amount | None = None
    cost_currency: Currency | None = None

    @model_validator(mode="after")
    def _one_stock_form(self) -> PrizeUpdate:
        if self.stock is not None and self.stock_delta is not None:
            raise ValueError("give stock or stock_delta, not both")
        return self
