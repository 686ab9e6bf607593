from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from activity_service.db import Base


class Team(Base):
    """A team started by an initiator in a team activity. Stored ``status`` is forming or
    succeeded; "failed" is derived on read (forming while the activity is over), like the
    activity's own ended status, so no job has to flip teams on time."""

    __tablename__ = "teams"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        CheckConstraint(
            "helpers_count >= 0 AND helpers_count <= helpers_needed", name="helpers_in_range"
        ),
        CheckConstraint("status IN ('forming', 'succeeded')", name="stored_status"),
        # One forming team per initiator and activity: the database decides concurrent starts.
        Index(
            "uq_teams_one_forming",
            "tenant_id",
            "activity_id",
            "initiator_id",
            unique=True,
            postgresql_where=text("status = 'forming'"),
        ),
        Index("ix_teams_tenant_activity_created", "tenant_id", "activity_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    number: Mapped[str] = mapped_column(String(16), nullable=False)
    initiator_id: Mapped[str] = mapped_column(String(128), nullable=False)
    app_id: Mapped[str | None] = mapped_column(String(64))
    # The name is rendered per reader language from the nickname ("<nickname>'s team").
    nickname: Mapped[str] = mapped_column(String(128), nullable=False)
    # Copied from the activity at the start: a team keeps the target it was started with.
    helpers_needed: Mapped[int] = mapped_column(Integer, nullable=False)
    helpers_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="forming")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TeamAssist(Base):
    """One helper's assist of one team: unique per (team, helper), so nobody helps twice."""

    __tablename__ = "team_assists"
    __table_args__ = (
        UniqueConstraint("team_id", "helper_id"),
        Index("ix_team_assists_tenant_activity_helper", "tenant_id", "activity_id", "helper_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    team_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("teams.id", ondelete="CASCADE"), nullable=False
    )
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    helper_id: Mapped[str] = mapped_column(String(128), nullable=False)
    # The helper reward matched at the assist (first segment in order), if any.
    helper_reward_id: Mapped[str | None] = mapped_column(String(32))
    prize_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    grant_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class TeamLimitCounter(Base):
    """Teams started (role initiator) or assists made (role helper) by one user in one
    activity, incremented only by a conditional upsert (``… WHERE count < limit``) so
    concurrent requests can never exceed the initiation or assist limit."""

    __tablename__ = "team_limit_counters"
    __table_args__ = (CheckConstraint("count >= 0", name="count_not_negative"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    activity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
