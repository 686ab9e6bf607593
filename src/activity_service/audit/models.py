from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from activity_service.db import Base


class ActivityAudit(Base):
    """Who changed what in an activity and when; written in the change's transaction."""

    __tablename__ = "activity_audit"
    __table_args__ = (
        Index(
            "ix_activity_audit_tenant_activity_created", "tenant_id", "activity_id", "created_at"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    actor: Mapped[str] = mapped_column(String(160), nullable=False)
    # created | updated | published | closed
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # {"field": {"before": ..., "after": ...}}
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    # The injectable clock's time of the change (named created_at for keyset pagination).
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
