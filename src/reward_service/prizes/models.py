from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Integer, Numeric, String, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from reward_service.db import Base


class Prize(Base):
    __tablename__ = "prizes"
    # The last guard of "never negative stock", whatever code path updates it.
    __table_args__ = (CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # Type-specific template fields (coupon validity, physical description, cash amount...).
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    # Physical items only; decremented atomically at issue, never below zero.
    stock: Mapped[int | None] = mapped_column(Integer)
    cost_amount: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))
    cost_currency: Mapped[str | None] = mapped_column(String(3))
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    # Counts operator edits; the ETag of the prize. Stock taken by issuing does not move it
    # (an edit adjusting stock sends ``stock_delta``, which applies to the live stock).
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
