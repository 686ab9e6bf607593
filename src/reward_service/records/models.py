from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Sequence,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from reward_service.db import Base

record_number_seq = Sequence("reward_record_number_seq", metadata=Base.metadata)


class RewardRecord(Base):
    __tablename__ = "reward_records"
    __table_args__ = (
        # The real guard of "never twice": one record per grant, whatever is redelivered.
        UniqueConstraint("tenant_id", "grant_key"),
        Index("ix_reward_records_tenant_activity_status", "tenant_id", "activity_code", "status"),
        Index("ix_reward_records_tenant_user", "tenant_id", "user_id"),
        Index("ix_reward_records_status_updated", "status", "updated_at"),
        Index("ix_reward_records_status_lock_expires", "status", "lock_expires_at"),
        # "Earned by inviting" totals read only the inviter's own referral rewards.
        Index(
            "ix_reward_records_tenant_inviter",
            "tenant_id",
            "user_id",
            postgresql_where=text("referral_role = 'inviter'"),
        ),
        # The lock-ups still running, whatever the record's status (settle_due_locks).
        Index(
            "ix_reward_records_lock_running",
            "lock_expires_at",
            postgresql_where=text("lock_result IS NULL AND lock_expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    number: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    grant_key: Mapped[str] = mapped_column(String(200), nullable=False)
    activity_code: Mapped[str] = mapped_column(String(32), nullable=False)
    rule_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    app_id: Mapped[str | None] = mapped_column(String(64))
    counterpart_id: Mapped[str | None] = mapped_column(String(128))
    # inviter | invitee for referral rewards (None otherwise, and for records made before
    # the role was recorded).
    referral_role: Mapped[str | None] = mapped_column(String(8))
    enterprise_name: Mapped[str | None] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(40), nullable=False)
    achieved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    prize_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    prize_type: Mapped[str] = mapped_column(String(16), nullable=False)
    # Copied at creation so the winners list reads without a join and survives prize edits.
    prize_name: Mapped[str | None] = mapped_column(String(200))
    activity_name: Mapped[str | None] = mapped_column(String(200))
    # What the user reads, per language (zh-Hans, zh-Hant, en), copied like the names above.
    prize_title: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    activity_names: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    issuance_form: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    issued_to: Mapped[str | None] = mapped_column(String(128))
    lock_amount: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))
    lock_currency: Mapped[str | None] = mapped_column(String(3))
    lock_days: Mapped[int | None] = mapped_column(Integer)
    lock_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lock_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # SPEC §3.3 "issued only after the lock-up": false means issued at once, the lock then
    # runs from the issue and is still checked at its expiry (records/lockup.py).
    lock_issue_after: Mapped[bool | None] = mapped_column(Boolean)
    # The verdict at expiry: "held" or "broken" (null while the lock runs); with the time
    # and, when broken, why. A reward issued at once keeps its status and is only flagged.
    lock_result: Mapped[str | None] = mapped_column(String(16))
    lock_settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lock_detail: Mapped[str | None] = mapped_column(String(500))
    # When the lock condition was last asked about (the answer may be "ask again later").
    lock_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the reconciler last re-drove this record, so it is not re-driven every tick.
    redriven_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    # Bumped on every transition; lets the reconciler see how long a record sat in Issuing.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class RecordTransition(Base):
    __tablename__ = "reward_record_transitions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    record_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("reward_records.id", ondelete="CASCADE"), index=True, nullable=False
    )
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str] = mapped_column(String(160), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
