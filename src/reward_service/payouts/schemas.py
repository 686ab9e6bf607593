from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from service_kit.signing import SECRET_MIN_LENGTH


class PayoutEndpointWrite(BaseModel):
    url: AnyHttpUrl = Field(
        description="The tenant cash system's payment URL. It receives `POST` with an "
        "`Idempotency-Key` header (the reward record number) and answers 2xx with the payment "
        "(also on a replay of the same key) — with `account_id`, the account it credited, "
        "when the user has several — 4xx for a definite refusal, 5xx when unavailable.",
        examples=["https://cash.broker.example/v1/payments"],
    )
    signing_secret: str | None = Field(
        None,
        min_length=SECRET_MIN_LENGTH,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="Key of the `X-Platform-Signature` HMAC-SHA256 on every call "
        "(`t=<unix seconds>,v1=<hex of HMAC(secret, t + '.' + body)>`). Omitted: the secret "
        "in place is kept, or, when there is none, one is generated and returned once in "
        "this answer. Never shown again.",
    )


class PayoutEndpointRead(BaseModel):
    url: str | None = Field(examples=["https://cash.broker.example/v1/payments"])
    signed: bool = Field(
        False, description="Whether calls to this endpoint carry `X-Platform-Signature`"
    )
    signing_secret: str | None = Field(
        None, description="Only in the answer of the PUT that generated it"
    )
    source: Literal["tenant", "default", "none"] = Field(
        description="`tenant` (configured here), `default` (the platform setting) or `none`",
        examples=["tenant"],
    )
    updated_by: str | None = None
    updated_at: datetime | None = None


class CashPayoutRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    record_number: str
    user_id: str
    amount: Decimal
    currency: str
    status: Literal["requested", "paid", "refused"] = Field(
        examples=["paid"], description="requested | paid | refused"
    )
    attempts: int
    payment_id: str | None
    account_id: str | None = Field(None, description="The account the cash system credited")
    last_error: str | None
    updated_at: datetime


class CashPaymentRequest(BaseModel):
    """What the platform sends to a cash system (the idempotency key is also a header)."""

    reference: str = Field(description="The reward record number, also the idempotency key")
    tenant_id: str
    user_id: str
    amount: str = Field(examples=["100.00"])
    currency: str = Field(examples=["HKD"])
    record_id: str
