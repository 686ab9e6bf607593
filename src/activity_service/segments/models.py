from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from activity_service.db import Base


class Segment(Base):
    """A named set of users of a tenant (SPEC §1.9): uploaded by operators or fed by an
    external segmentation system over HTTP."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(String(2000))
    # upload | external
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="upload")
    external_url: Mapped[str | None] = mapped_column(String(1000))
    created_by: Mapped[str] = mapped_column(String(160), nullable=False)
    last_refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_refresh_error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class SegmentMember(Base):
    """One membership interval [added_at, removed_at) of a user in a segment.

    Keeping intervals instead of deleting rows is what lets eligibility read the snapshot
    "as of" the last refresh (5 minutes or 1 day ago) rather than the live set.
    """

    __tablename__ = "segment_members"
    __table_args__ = (
        # At most one open interval per user: ON CONFLICT target of bulk adds.
        Index(
            "uq_segment_members_open",
            "segment_id",
            "user_id",
            unique=True,
            postgresql_where=text("removed_at IS NULL"),
        ),
        Index("ix_segment_members_lookup", "segment_id", "user_id", "added_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    segment_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("segments.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
