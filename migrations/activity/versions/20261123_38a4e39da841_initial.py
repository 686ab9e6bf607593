"""initial

Revision ID: 38a4e39da841
Revises:
Create Date: 2026-11-23 10:39:55.757942
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "38a4e39da841"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activities",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("activity_code", sa.String(length=32), nullable=False),
        sa.Column("business_code", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attribute", sa.String(length=16), nullable=True),
        sa.Column("issuance_form", sa.String(length=16), nullable=False),
        sa.Column("review_required", sa.Boolean(), nullable=False),
        sa.Column("cost_type", sa.String(length=32), nullable=True),
        sa.Column("remarks", sa.String(length=2000), nullable=True),
        sa.Column("segment_id", sa.UUID(), nullable=True),
        sa.Column("segment_refresh", sa.String(length=8), nullable=True),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("submitter", sa.String(length=160), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activities")),
        sa.UniqueConstraint(
            "tenant_id", "activity_code", name=op.f("uq_activities_tenant_id_activity_code")
        ),
        sa.UniqueConstraint(
            "tenant_id", "business_code", name=op.f("uq_activities_tenant_id_business_code")
        ),
    )
    op.create_index(
        "ix_activities_tenant_state_kind",
        "activities",
        ["tenant_id", "state", "kind"],
        unique=False,
    )
    op.create_table(
        "events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("received_by", sa.String(length=160), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("tenant_id", "event_id", name=op.f("uq_events_tenant_id_event_id")),
    )
    op.create_index(
        "ix_events_tenant_user_occurred",
        "events",
        ["tenant_id", "user_id", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("grant_key", sa.String(length=200), nullable=False),
        sa.Column("activity_id", sa.UUID(), nullable=False),
        sa.Column("activity_code", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("counterpart_id", sa.String(length=128), nullable=True),
        sa.Column("task", sa.String(length=40), nullable=False),
        sa.Column("achieved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prize_id", sa.UUID(), nullable=False),
        sa.Column("source_event_id", sa.String(length=128), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("record_status", sa.String(length=16), nullable=False),
        sa.Column("record_number", sa.String(length=32), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
        sa.UniqueConstraint("tenant_id", "grant_key", name=op.f("uq_grants_tenant_id_grant_key")),
    )
    op.create_index(
        "ix_grants_tenant_activity_user",
        "grants",
        ["tenant_id", "activity_id", "user_id"],
        unique=False,
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("job_name", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=200), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    op.create_index(
        "ix_outbox_messages_unsent",
        "outbox_messages",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_outbox_messages_unsent",
        table_name="outbox_messages",
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.drop_table("outbox_messages")
    op.drop_index("ix_grants_tenant_activity_user", table_name="grants")
    op.drop_table("grants")
    op.drop_index("ix_events_tenant_user_occurred", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_activities_tenant_state_kind", table_name="activities")
    op.drop_table("activities")
