from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from activity_service.db import Base


class EventKey(Base):
    """One row per stored event id of a tenant: the idempotency of event ids across the
    monthly partitions of ``events`` (a unique key of a partitioned table must contain the
    partition key, so ``events`` itself cannot refuse an id seen in another month). Narrow
    and keyed by tenant first; rows past the history retention are pruned with their
    events (BRIN on the arrival time: ids are written in arrival order)."""

    __tablename__ = "event_keys"
    __table_args__ = (Index("ix_event_keys_received", "received_at", postgresql_using="brin"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), primary_key=True
    )


class Event(Base):
    """A business event as received; idempotent on (tenant, event_id) through
    ``event_keys``. Partitioned by month of arrival (``received_at``, set by the server, so a
    new row always lands in the current month whatever its business time); the key starts
    with the tenant, the distribution column of a sharded PostgreSQL."""

    __tablename__ = "events"
    __table_args__ = (
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
        {"postgresql_partition_by": "RANGE (received_at)"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    app_id: Mapped[str] = mapped_column(String(64), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    received_by: Mapped[str] = mapped_column(String(160), nullable=False)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), primary_key=True
    )
