from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.db import Base


class TenantSettings(Base):
    """Per-tenant referral settings; a tenant without a row uses the service defaults."""

    __tablename__ = "referral_tenant_settings"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    registration_bind_grace_hours: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(160), nullable=False)
    # The ETag: 1 at the first PUT (the defaults read as version 0), +1 per change.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
