from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from activity_service.db import Base


class Activity(Base):
    __tablename__ = "activities"
    __table_args__ = (
        UniqueConstraint("tenant_id", "activity_code"),
        UniqueConstraint("tenant_id", "business_code"),
        UniqueConstraint("tenant_id", "seq"),
        Index("ix_activities_tenant_state_kind", "tenant_id", "state", "kind"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    # Sequence number within the tenant (the list's 序号), assigned under a tenant lock.
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    activity_code: Mapped[str] = mapped_column(String(32), nullable=False)
    business_code: Mapped[str] = mapped_column(String(32), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # {"zh-Hans": ..., "zh-Hant": ..., "en": ...}
    name: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    # Stored lifecycle state: draft | published | closed. "running" and "ended" are derived
    # from published + the clock (SPEC §1.3), so no job has to flip them on time.
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="draft")
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attribute: Mapped[str | None] = mapped_column(String(16))
    issuance_form: Mapped[str] = mapped_column(String(16), nullable=False, default="automatic")
    review_required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    cost_type: Mapped[str | None] = mapped_column(String(32))
    remarks: Mapped[str | None] = mapped_column(String(2000))
    segment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    segment_refresh: Mapped[str | None] = mapped_column(String(8))
    # The kind-specific configuration (rules, tiers, team settings), as validated by schemas.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    submitter: Mapped[str] = mapped_column(String(160), nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class ActivityCatalogVersion(Base):
    """A counter per tenant that a database trigger moves on every change to its
    activities: evaluation keeps the published ones in memory while it stands still."""

    __tablename__ = "activity_catalog_versions"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
