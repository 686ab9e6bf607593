from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from activity_service.db import Base


class Event(Base):
    """A business event as received; idempotent on (tenant, event_id)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event_id"),
        Index("ix_events_tenant_user_occurred", "tenant_id", "user_id", "occurred_at"),
        # The daily run finds the users with money events of a window.
        Index("ix_events_tenant_type_occurred", "tenant_id", "type", "occurred_at"),
        # The download task asks who logged in first on a device (logins only).
        Index(
            "ix_events_login_device",
            "tenant_id",
            "app_id",
            text("(payload->>'device_id')"),
            "occurred_at",
            postgresql_where=text("type = 'app.login'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    event_id: Mapped[str] = mapped_column(String(128), nullable=False)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    app_id: Mapped[str] = mapped_column(String(64), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    received_by: Mapped[str] = mapped_column(String(160), nullable=False)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
