from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from reward_service.db import Base


class WalletCoupon(Base):
    """A coupon in a user's wallet (SPEC §3.5); one per reward record, never two."""

    __tablename__ = "wallet_coupons"
    __table_args__ = (
        Index("ix_wallet_coupons_tenant_user", "tenant_id", "user_id"),
        # The code a broker system redeems it by: one coupon per code in a tenant.
        UniqueConstraint("tenant_id", "code"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    record_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, nullable=False)
    # Redemption code (wallet/rules.py); coupons from before codes carry their id's hex.
    code: Mapped[str] = mapped_column(String(32), nullable=False)
    prize_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    coupon_type: Mapped[str] = mapped_column(String(32), nullable=False)
    title: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    instructions: Mapped[str] = mapped_column(String(2000), nullable=False, default="")
    # unused | used; "expired" is derived from expires_at when read.
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="unused")
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who marked it used ("user:u-1", "service:broker-pos") and their reference for the
    # use (an order id): the same caller and reference asking again is a replay.
    used_by: Mapped[str | None] = mapped_column(String(160))
    used_reference: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
