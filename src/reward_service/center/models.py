"""Reward center tables (SPEC §3.4): manual issuances and the batch files they came from."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from reward_service.db import Base


class IssuanceBatch(Base):
    """One uploaded file. Accepted lines are issuances (``batch_id`` + ``line``); rejected
    lines are kept here as they were reported, so the results page never changes."""

    __tablename__ = "reward_center_batches"
    __table_args__ = (Index("ix_reward_center_batches_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    # The batch-wide activity code, when the upload named one.
    activity_code: Mapped[str | None] = mapped_column(String(32))
    file_name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    line_count: Mapped[int] = mapped_column(Integer, nullable=False)
    accepted: Mapped[int] = mapped_column(Integer, nullable=False)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False)
    rejected_lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    submitter: Mapped[str] = mapped_column(String(160), nullable=False)
    reviewer: Mapped[str | None] = mapped_column(String(160))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ManualIssuance(Base):
    """An operator's decision to give ``quantity`` of a prize to one user under an activity
    code. Its reward records carry the grant keys ``manual:<id>:<n>`` (n = 1..quantity)."""

    __tablename__ = "reward_center_issuances"
    __table_args__ = (
        UniqueConstraint("batch_id", "line"),
        Index("ix_reward_center_issuances_tenant_created", "tenant_id", "created_at"),
        Index("ix_reward_center_issuances_tenant_status", "tenant_id", "status"),
        Index("ix_reward_center_issuances_tenant_user", "tenant_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("reward_center_batches.id", ondelete="CASCADE")
    )
    # 1-based line of the batch file (data lines, header excluded); NULL for a single issuance.
    line: Mapped[int | None] = mapped_column(Integer)
    activity_code: Mapped[str] = mapped_column(String(32), nullable=False)
    activity_name: Mapped[str | None] = mapped_column(String(200))
    activity_names: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    # Snapshots of the activity at issuance time: later switches apply to later issuances.
    review_required: Mapped[bool] = mapped_column(nullable=False)
    issuance_form: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    app_id: Mapped[str | None] = mapped_column(String(64))
    counterpart_id: Mapped[str | None] = mapped_column(String(128))
    prize_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    prize_name: Mapped[str | None] = mapped_column(String(200))
    prize_type: Mapped[str] = mapped_column(String(16), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    remarks: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    submitter: Mapped[str] = mapped_column(String(160), nullable=False)
    reviewer: Mapped[str | None] = mapped_column(String(160))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
