from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from activity_service.db import Base


class Grant(Base):
    """The grant ledger: each decision that a user earned a prize, once per grant key."""

    __tablename__ = "grants"
    __table_args__ = (
        UniqueConstraint("tenant_id", "grant_key"),
        # By activity alone (stats, crediting): a uuid per entry, deduplicated; explain's
        # (activity, user) read goes by the user's index, which finds their few grants.
        Index("ix_grants_activity", "activity_id"),
        Index("ix_grants_tenant_user_new_user", "tenant_id", "user_id", "new_user_reward"),
        # At-end activities pay one tier of a cumulative task per user, ever (SPEC §1.5).
        Index(
            "uq_grants_settlement",
            "tenant_id",
            "activity_id",
            "user_id",
            "settlement",
            unique=True,
            postgresql_where=text("settlement IS NOT NULL"),
        ),
    )

    # Random for a grant made on its own; the daily run numbers its grants time-ordered
    # (``daily_repository._id_base``) so millions of them append to this key's index.
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    # Compared by its bytes: an identifier, and a locale's comparison cost every insert.
    grant_key: Mapped[str] = mapped_column(String(200, collation="C"), nullable=False)
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    activity_code: Mapped[str] = mapped_column(String(32), nullable=False)
    rule_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    counterpart_id: Mapped[str | None] = mapped_column(String(128))
    task: Mapped[str] = mapped_column(String(40), nullable=False)
    achieved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    prize_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    source_event_id: Mapped[str | None] = mapped_column(String(128))
    # A reward of a new-user basic activity: what the new/old user attribute looks at.
    new_user_reward: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default="false"
    )
    # The cumulative task an at-end settlement grant settles (its one tier), else null.
    settlement: Mapped[str | None] = mapped_column(String(40))
    # Mirrors the reward record's status (fed back by reward_service); "granted" until then.
    record_status: Mapped[str] = mapped_column(String(16), nullable=False, default="granted")
    record_number: Mapped[str | None] = mapped_column(String(32))
    # The record's version the status is from: an older message arriving late is ignored.
    record_version: Mapped[int | None] = mapped_column(Integer)
    # Whether the grant took a slot of its prize's per-user cap, and when its cancelled
    # reward gave it back (once: a cancelled record frees its cap slot).
    cap_slot: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default="false"
    )
    # Whether it took one of its prize's total quantity, and what it took from the budget
    # (in the budget's currency): what a cancellation gives back.
    total_slot: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default="false"
    )
    budget_cost: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))
    given_back_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class PrizeCapCounter(Base):
    """How many times a user received a prize in an activity: incremented only by a
    conditional upsert (``… WHERE count < cap``), in the grant's transaction, so concurrent
    evaluations can never exceed the cap."""

    __tablename__ = "prize_cap_counters"
    __table_args__ = (CheckConstraint("count >= 0", name="count_not_negative"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    prize_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)


class PrizeTotalCounter(Base):
    """How many of a prize an activity granted, all users together (SPEC §6 "Budgets"):
    taken by a conditional upsert (``… WHERE count < total``) in the grant's transaction;
    the row carries the total it was last taken under and a CHECK keeps it within."""

    __tablename__ = "prize_total_counters"
    __table_args__ = (
        CheckConstraint("count >= 0", name="count_not_negative"),
        CheckConstraint("count <= total", name="within_total"),
    )

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    prize_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    total: Mapped[int] = mapped_column(Integer, nullable=False)


class ActivityBudgetSpend(Base):
    """What an activity's grants took from its budget (in the budget's currency): taken by a
    conditional upsert (``… WHERE spent + cost <= budget``); a CHECK keeps it within the
    budget it was last taken under."""

    __tablename__ = "activity_budget_spend"
    __table_args__ = (
        CheckConstraint("spent >= 0", name="spent_not_negative"),
        CheckConstraint("spent <= budget", name="within_budget"),
    )

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    spent: Mapped[Decimal] = mapped_column(Numeric(20, 6), nullable=False)
    budget: Mapped[Decimal] = mapped_column(Numeric(20, 6), nullable=False)


class RegularParticipation(Base):
    """The one regular referral activity an inviter takes part in (SPEC §1.7): one row per
    inviter, claimed by INSERT … ON CONFLICT, taken over only once that activity ended."""

    __tablename__ = "regular_participations"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    inviter_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ReferralQualification(Base):
    """An invitee who completed a referral rule's task for an inviter, with the inviter's
    running count (``seq``) in this activity and rule: the tier is decided by ``seq``, once."""

    __tablename__ = "referral_qualifications"
    __table_args__ = (
        UniqueConstraint("tenant_id", "activity_id", "rule_id", "inviter_id", "seq"),
        Index("ix_referral_qualifications_inviter", "tenant_id", "inviter_id"),
    )

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invitee_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    inviter_id: Mapped[str] = mapped_column(String(128), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    achieved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Regular activities count into the inviter's cumulative invitation totals.
    counted: Mapped[bool] = mapped_column(Boolean, nullable=False)


class ReferralCounter(Base):
    __tablename__ = "referral_counters"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    inviter_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)


class DailyRun(Base):
    """One daily run of a tenant for a local day: resumable from ``progress`` (the last
    user finished per activity) and idempotent through grant keys."""

    __tablename__ = "daily_runs"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # running | done
    progress: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    grants: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EvaluationOutcome(Base):
    """The latest reason a user did or did not earn a rule (SPEC §5 explainability)."""

    __tablename__ = "evaluation_outcomes"
    # Each daily run rewrites the outcome of every user in scope: room left on each page lets
    # the new version stay beside the old one (a HOT update, no new primary key entry).
    __table_args__ = {"postgresql_with": {"fillfactor": 70}}

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(40), nullable=False)
    detail: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # When the database recorded it (explain compares it with the events' received_at and
    # the grants' created_at; ``at`` follows the service clock, which a sandbox may move).
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
