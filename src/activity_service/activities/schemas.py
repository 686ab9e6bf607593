from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from activity_service.activities.rules import (
    ActivityKind,
    ActivityStatus,
    TaskType,
    task_needs_threshold,
)
from contracts.payloads import IssuanceForm, LockUp
from service_kit.money import Amount, Currency


class LocalizedName(BaseModel):
    """The name in three languages; at least one, the others fall back to it."""

    model_config = ConfigDict(populate_by_name=True)

    zh_hans: str | None = Field(None, alias="zh-Hans", max_length=100, examples=["新用户注册礼"])
    zh_hant: str | None = Field(None, alias="zh-Hant", max_length=100, examples=["新用戶註冊禮"])
    en: str | None = Field(None, max_length=100, examples=["New user sign-up gift"])

    @model_validator(mode="after")
    def _at_least_one(self) -> LocalizedName:
        if not (self.zh_hans or self.zh_hant or self.en):
            raise ValueError("give the name in at least one of zh-Hans, zh-Hant, en")
        return self


class BasicRule(BaseModel):
    """One reward rule (tier) of a basic activity."""

    id: str | None = Field(
        None, max_length=32, description="Stable rule id; generated when omitted", examples=["r1"]
    )
    task: TaskType = Field(examples=["register"])
    threshold: Amount | None = Field(None, description="For amount tasks only")
    currency: Currency | None = None
    prize_id: uuid.UUID
    lock_up: LockUp | None = None
    enterprise_id: str | None = Field(None, description="enterprise_certification: a named one")

    @model_validator(mode="after")
    def _threshold_fits_task(self) -> BasicRule:
        if task_needs_threshold(self.task):
            if self.threshold is None or self.currency is None:
                raise ValueError(f"task {self.task.value} needs threshold and currency")
        elif self.threshold is not None or self.currency is not None:
            raise ValueError(f"task {self.task.value} takes no threshold")
        if self.enterprise_id and self.task is not TaskType.enterprise_certification:
            raise ValueError("enterprise_id applies to enterprise_certification only")
        return self


class CommonFields(BaseModel):
    name: LocalizedName
    starts_at: datetime = Field(examples=["2026-12-01T00:00:00+08:00"])
    ends_at: datetime = Field(examples=["2027-01-01T00:00:00+08:00"])
    remarks: str | None = Field(None, max_length=2000, description="Operator memo, never shown")
    review_required: bool = False
    cost_type: Literal["marketing_promotion", "daily_operations", "rebate"] | None = None

    @model_validator(mode="after")
    def _window(self) -> CommonFields:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("starts_at and ends_at need a time zone offset")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class BasicActivityCreate(CommonFields):
    kind: Literal["basic"]
    attribute: Literal["unlimited", "new_user", "old_user"] = "unlimited"
    timing: Literal["real_time", "at_end"] = "real_time"
    issuance_form: IssuanceForm = IssuanceForm.automatic
    rules: list[BasicRule] = Field(min_length=1, max_length=50)


class NonStandardActivityCreate(CommonFields):
    kind: Literal["non_standard"]


ActivityCreate = Annotated[
    BasicActivityCreate | NonStandardActivityCreate, Field(discriminator="kind")
]


class ActivityRead(BaseModel):
    id: uuid.UUID
    activity_code: str = Field(examples=["ACT-7K2M9QXD"])
    business_code: str = Field(examples=["BIZ-4Z8R2N6W"])
    kind: ActivityKind
    name: dict[str, Any]
    status: ActivityStatus
    starts_at: datetime | None
    ends_at: datetime | None
    attribute: str | None
    issuance_form: str
    review_required: bool
    cost_type: str | None
    remarks: str | None
    config: dict[str, Any]
    version: int
    submitter: str
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime
