from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from activity_service.activities.rules import SegmentRefresh


class SegmentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "VIP clients", "description": "AUM over 1M HKD", "source": "upload"},
                {
                    "name": "Dormant 90d",
                    "source": "external",
                    "external_url": "https://segments.broker.example/v1/segments/dormant-90d",
                },
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200, description="Unique in the tenant")
    description: str | None = Field(None, max_length=2000, description="Operator memo")
    source: Literal["upload", "external"] = Field(
        "upload",
        description="upload: members are uploaded by operators; external: pulled from "
        "external_url by a refresh",
    )
    external_url: HttpUrl | None = Field(
        None,
        description="external only: GET returns a JSON array of user ids, or pages "
        '`{"items": [...], "next_cursor": "..."}` followed with `?cursor=`',
    )

    @model_validator(mode="after")
    def _url_with_external(self) -> SegmentCreate:
        if self.source == "external" and self.external_url is None:
            raise ValueError("an external segment needs external_url")
        if self.source == "upload" and self.external_url is not None:
            raise ValueError("external_url belongs to external segments only")
        return self


class SegmentRead(BaseModel):
    id: uuid.UUID = Field(description="Segment id, referenced by activities")
    name: str = Field(examples=["VIP clients"])
    description: str | None = Field(description="Operator memo")
    source: Literal["upload", "external"] = Field(description="upload or external")
    external_url: str | None = Field(description="external: where members are pulled from")
    member_count: int = Field(description="Members now (the live set, before any snapshot)")
    created_by: str = Field(examples=["operator:ops-1"])
    last_refreshed_at: datetime | None = Field(
        None, description="Last membership change (upload or external refresh)"
    )
    last_refresh_error: str | None = Field(
        None, description="Why the last periodic external refresh failed (null when fine)"
    )
    created_at: datetime = Field(description="Created")
    updated_at: datetime = Field(description="Last changed")


class MembershipChange(BaseModel):
    segment_id: uuid.UUID = Field(description="The segment")
    mode: Literal["replace", "add", "remove"] = Field(description="What the upload did")
    received: int = Field(description="Distinct user ids in the upload")
    added: int = Field(description="Users who became members")
    removed: int = Field(description="Users who stopped being members")
    member_count: int = Field(description="Members now")
    at: datetime = Field(description="When the change happened")
    visible_for_5m_from: datetime = Field(
        description="From when activities with a 5-minute refresh delay see the change"
    )
    visible_for_1d_from: datetime = Field(
        description="From when activities with a 1-day refresh delay see the change"
    )


class MembershipRead(BaseModel):
    segment_id: uuid.UUID
    user_id: str
    refresh: SegmentRefresh
    snapshot_at: datetime = Field(description="The refresh whose snapshot was read")
    member: bool = Field(description="Member in that snapshot: what eligibility uses")
    member_now: bool = Field(description="Member in the live set")
