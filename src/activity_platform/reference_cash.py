"""A reference cash system: the smallest real implementation of what a broker's cash
endpoint must do for the platform's cash rewards (SPEC §3.7), so the whole payout path
runs for real in development and tests.

Contract (what any tenant cash system must honour):
- ``POST /v1/payments`` with an ``Idempotency-Key`` header (the reward record number) and a
  JSON body ``{reference, tenant_id, user_id, amount, currency, record_id}``.
- One payment per key: a replay of a key answers 200 with the payment made the first time;
  the same key with a different body is refused (422 ``idempotency_key_reused``).
- 2xx = paid; 4xx = a definite refusal (``code`` says why); 5xx = try again later.

For tests it can refuse (``CASH_REFUSE_AMOUNT_OVER``, ``CASH_REFUSE_USER_IDS``) and
misbehave on purpose: ``CASH_UNAVAILABLE_RATE`` answers 503 before doing anything, and
``CASH_LOST_RESPONSE_RATE`` records the payment and then answers 503 anyway (the response
"lost on the way back"), which only an idempotent caller survives without paying twice.
Payments live in their own database (``CASH_DATABASE_URL``), created on start.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import DateTime, Numeric, String, func, select
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service_kit.config import normalize_database_url
from service_kit.db import Database, new_metadata
from service_kit.migrations import ensure_database
from service_kit.signing import SIGNATURE_HEADER, verify
from service_kit.telemetry import RequestContextMiddleware


class CashSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CASH_", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/cash"
    # Definite refusals (422), to exercise the Failed path.
    refuse_amount_over: Decimal | None = Decimal("1000000")
    refuse_user_ids: list[str] = Field(default_factory=list)
    # Transient trouble (503), to exercise retries: probability per request.
    unavailable_rate: float = Field(0.0, ge=0.0, le=1.0)
    lost_response_rate: float = Field(0.0, ge=0.0, le=1.0)
    # When set, every payment request must carry a valid ``X-Platform-Signature`` made with
    # this key (``service_kit.signing``), else 401 ``invalid_signature`` and nothing paid.
    signing_secret: str = ""

    @field_validator("database_url", mode="after")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalize_database_url(value)


class Base(DeclarativeBase):
    metadata = new_metadata()


class CashPayment(Base):
    __tablename__ = "cash_payments"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # The guard of "paid once": one payment per idempotency key (the reward record number).
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    amount: Mapped[Decimal] = mapped_column(Numeric(20, 6), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    reference: Mapped[str] = mapped_column(String(128), nullable=False)
    record_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class PaymentRequest(BaseModel):
    reference: str = Field(min_length=1, max_length=128)
    tenant_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=128)
    amount: Decimal = Field(gt=0, max_digits=20, decimal_places=6)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    record_id: str | None = Field(None, max_length=64)


def _payment_json(payment: CashPayment) -> dict[str, Any]:
    return {
        "payment_id": str(payment.id),
        "idempotency_key": payment.idempotency_key,
        "tenant_id": payment.tenant_id,
        "user_id": payment.user_id,
        "amount": format(payment.amount.normalize(), "f"),
        "currency": payment.currency,
        # The account credited: this reference system keeps one cash account per user and
        # currency; a real broker answers with the sub-account it actually paid.
        "account_id": f"{payment.user_id}-{payment.currency}",
        "reference": payment.reference,
        "created_at": payment.created_at.isoformat(),
    }


def _problem(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {
            "type": f"about:blank#{code}",
            "title": code,
            "status": status,
            "detail": detail,
            "code": code,
        },
        status_code=status,
        media_type="application/problem+json",
    )


def _same(payment: CashPayment, body: PaymentRequest) -> bool:
    return (
        payment.tenant_id == body.tenant_id
        and payment.user_id == body.user_id
        and Decimal(payment.amount) == body.amount
        and payment.currency == body.currency
    )


async def prepare_database(url: str) -> None:
    """Create the database and its table if missing (the reference system has no migrations:
    it is one table that never changes shape)."""
    await ensure_database(url)
    db = Database(url, pool_size=2)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
    finally:
        await db.dispose()


def create_app(
    settings: CashSettings | None = None, *, rng: random.Random | None = None
) -> FastAPI:
    settings = settings or CashSettings()
    chance = rng or random.Random()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await prepare_database(settings.database_url)
        app.state.db = Database(settings.database_url, pool_size=10)
        try:
            yield
        finally:
            await app.state.db.dispose()

    app = FastAPI(
        title="Reference cash system",
        description="Pays cash rewards once per idempotency key (SPEC §3.7).",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(RequestContextMiddleware, service="cash")
    # Deterministic trouble for tests: answer 503 to the next N requests (before doing
    # anything), or make the next N payments and then answer 503 ("lost" answers).
    app.state.unavailable_next = 0
    app.state.lost_next = 0

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/payments", operation_id="create_payment")
    async def create_payment(
        body: PaymentRequest,
        request: Request,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> JSONResponse:
        if settings.signing_secret and not verify(
            settings.signing_secret,
            await request.body(),
            request.headers.get(SIGNATURE_HEADER),
            time.time(),
        ):
            return _problem(401, "invalid_signature", f"Send a valid {SIGNATURE_HEADER}.")
        if not idempotency_key or len(idempotency_key) > 128:
            return _problem(422, "idempotency_key_required", "Send an Idempotency-Key header.")
        if request.app.state.unavailable_next > 0:
            request.app.state.unavailable_next -= 1
            return _problem(503, "unavailable", "Try again later.")
        if settings.unavailable_rate and chance.random() < settings.unavailable_rate:
            return _problem(503, "unavailable", "Try again later.")
        db: Database = request.app.state.db
        async with db.session() as session:
            existing = await session.scalar(
                select(CashPayment).where(CashPayment.idempotency_key == idempotency_key)
            )
            if existing is None:
                if (
                    settings.refuse_amount_over is not None
                    and body.amount > settings.refuse_amount_over
                ):
                    return _problem(
                        422,
                        "amount_over_limit",
                        f"{body.amount} is over the limit of {settings.refuse_amount_over}.",
                    )
                if body.user_id in settings.refuse_user_ids:
                    return _problem(422, "account_blocked", "The account cannot receive cash.")
                inserted = await session.scalar(
                    insert(CashPayment)
                    .values(
                        id=uuid.uuid4(),
                        idempotency_key=idempotency_key,
                        tenant_id=body.tenant_id,
                        user_id=body.user_id,
                        amount=body.amount,
                        currency=body.currency,
                        reference=body.reference,
                        record_id=body.record_id,
                        created_at=datetime.now(UTC),
                    )
                    .on_conflict_do_nothing(index_elements=["idempotency_key"])
                    .returning(CashPayment)
                )
                if inserted is not None:
                    payment, status = inserted, 201
                else:
                    # A concurrent request with the same key won: answer with its payment.
                    existing = await session.scalar(
                        select(CashPayment).where(CashPayment.idempotency_key == idempotency_key)
                    )
            if existing is not None:
                if not _same(existing, body):
                    return _problem(
                        422,
                        "idempotency_key_reused",
                        "This key was used for a different payment.",
                    )
                payment, status = existing, 200
            answer = _payment_json(payment)
        lost = request.app.state.lost_next > 0
        if lost:
            request.app.state.lost_next -= 1
        if lost or (settings.lost_response_rate and chance.random() < settings.lost_response_rate):
            return _problem(503, "unavailable", "The payment was made but the answer got lost.")
        return JSONResponse(answer, status_code=status)

    @app.get("/v1/payments/{idempotency_key}", operation_id="get_payment")
    async def get_payment(idempotency_key: str, request: Request) -> JSONResponse:
        async with request.app.state.db.session() as session:
            payment = await session.scalar(
                select(CashPayment).where(CashPayment.idempotency_key == idempotency_key)
            )
            if payment is None:
                return _problem(404, "not_found", "No payment with this key.")
            return JSONResponse(_payment_json(payment))

    return app
