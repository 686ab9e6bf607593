from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.db import Base


class Binding(Base):
    """The current inviter of one invitee at one node (SPEC §2.2)."""

    __tablename__ = "bindings"
    __table_args__ = (
        # Exactly one inviter per node: two concurrent binds cannot both win.
        UniqueConstraint("tenant_id", "invitee_id", "node"),
        # Per-inviter counts and "who did I invite" stay index-only as the graph grows.
        Index("ix_bindings_tenant_inviter_node", "tenant_id", "inviter_id", "node", "bound_at"),
        Index("ix_bindings_tenant_node_created", "tenant_id", "node", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    invitee_id: Mapped[str] = mapped_column(String(128), nullable=False)
    inviter_id: Mapped[str] = mapped_column(String(128), nullable=False)
    node: Mapped[str] = mapped_column(String(20), nullable=False)
    channel: Mapped[str] = mapped_column(String(20), nullable=False)
    app_id: Mapped[str | None] = mapped_column(String(64))
    operator_id: Mapped[str | None] = mapped_column(String(160))
    # The activity whose share link the invitee came through (channel share_link).
    activity_code: Mapped[str | None] = mapped_column(String(32))
    bound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class BindingHistory(Base):
    """Every change of a binding, kept forever."""

    __tablename__ = "binding_history"
    __table_args__ = (Index("ix_binding_history_tenant_invitee", "tenant_id", "invitee_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    invitee_id: Mapped[str] = mapped_column(String(128), nullable=False)
    node: Mapped[str] = mapped_column(String(20), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # bound | rebound | unbound
    previous_inviter_id: Mapped[str | None] = mapped_column(String(128))
    # None after an unbinding.
    inviter_id: Mapped[str | None] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(20), nullable=False)
    activity_code: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(160), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class NodeCompletion(Base):
    """The invitee completed this node: its inviter is frozen from then on."""

    __tablename__ = "node_completions"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id", "node"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    node: Mapped[str] = mapped_column(String(20), nullable=False)
    completed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    event_id: Mapped[str | None] = mapped_column(String(128))
