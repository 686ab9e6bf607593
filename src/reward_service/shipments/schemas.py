from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ShipmentStatus(StrEnum):
    awaiting_address = "awaiting_address"
    ready = "ready"
    shipping = "shipping"
    shipped = "shipped"


class AddressWrite(BaseModel):
    """The user's shipping address (SPEC §3.6); may be changed until the item is shipping."""

    recipient_name: str = Field(min_length=1, max_length=100, examples=["Chan Tai Man"])
    phone: str = Field(min_length=3, max_length=32, examples=["+852 9123 4567"])
    country: str | None = Field(None, max_length=64, examples=["HK"])
    province: str | None = Field(None, max_length=64, examples=["Hong Kong Island"])
    city: str = Field(min_length=1, max_length=64, examples=["Hong Kong"])
    district: str | None = Field(None, max_length=64, examples=["Central and Western"])
    address_line: str = Field(min_length=1, max_length=300, examples=["Flat 12A, 1 Queen's Road"])
    postal_code: str | None = Field(None, max_length=16, examples=["000000"])


class ShipmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    record_id: uuid.UUID
    record_number: str = Field(examples=["RR-20261123-00000042"])
    activity_code: str = Field(examples=["ACT-7K2M9QXD"])
    user_id: str
    prize_id: uuid.UUID
    prize_name: str = Field(
        examples=["Branded umbrella"],
        description="In the app's views, the prize's title in the Accept-Language language",
    )
    prize_name_language: str | None = Field(
        None, description="App views: the language `prize_name` is actually in"
    )
    activity_name: str | None = Field(
        None, description="App views: the activity's name in the Accept-Language language"
    )
    activity_name_language: str | None = Field(
        None, description="App views: the language `activity_name` is actually in"
    )
    status: ShipmentStatus
    recipient_name: str | None
    phone: str | None
    country: str | None
    province: str | None
    city: str | None
    district: str | None
    address_line: str | None
    postal_code: str | None
    address_updated_at: datetime | None
    logistics_company: str | None = Field(examples=["SF Express"])
    tracking_number: str | None = Field(examples=["SF1234567890"])
    shipping_at: datetime | None
    shipped_at: datetime | None
    created_at: datetime


class MarkShippingRequest(BaseModel):
    shipment_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)


class LineResult(BaseModel):
    """The outcome of one line of a batch operation."""

    line: int = Field(description="1-based position in the request or file", examples=[1])
    ref: str = Field(description="The shipment id or record number of the line")
    ok: bool
    code: str | None = Field(None, examples=["address_missing"])
    detail: str | None = None
    shipment_id: uuid.UUID | None = None


class BatchResult(BaseModel):
    succeeded: int
    failed: int
    results: list[LineResult]


class TrackingWrite(BaseModel):
    logistics_company: str = Field(min_length=1, max_length=100, examples=["SF Express"])
    tracking_number: str = Field(min_length=1, max_length=100, examples=["SF1234567890"])
