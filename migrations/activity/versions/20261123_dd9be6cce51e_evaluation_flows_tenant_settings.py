"""evaluation, flows, tenant settings

Revision ID: dd9be6cce51e
Revises: 1992c46c60cb
Create Date: 2026-11-23 10:54:51.646927
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "dd9be6cce51e"
down_revision: str | None = "1992c46c60cb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daily_runs",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("grants", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "day", name=op.f("pk_daily_runs")),
    )
    op.create_table(
        "devices",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("first_user_id", sa.String(length=128), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_event_id", sa.String(length=128), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("tenant_id", "app_id", "device_id", name=op.f("pk_devices")),
    )
    op.create_table(
        "evaluation_outcomes",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("activity_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "activity_id", "user_id", "rule_id", name=op.f("pk_evaluation_outcomes")
        ),
    )
    op.create_table(
        "fx_rates",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=3), nullable=False),
        sa.Column("target", sa.String(length=3), nullable=False),
        sa.Column("rate", sa.Numeric(precision=24, scale=10), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fx_rates")),
        sa.UniqueConstraint(
            "tenant_id",
            "source",
            "target",
            "effective_at",
            name=op.f("uq_fx_rates_tenant_id_source_target_effective_at"),
        ),
    )
    op.create_table(
        "prize_cap_counters",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("activity_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("prize_id", sa.UUID(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.CheckConstraint("count >= 0", name=op.f("ck_prize_cap_counters_count_not_negative")),
        sa.PrimaryKeyConstraint(
            "tenant_id", "activity_id", "user_id", "prize_id", name=op.f("pk_prize_cap_counters")
        ),
    )
    op.create_table(
        "referral_counters",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("activity_id", sa.UUID(), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("inviter_id", sa.String(length=128), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "activity_id", "rule_id", "inviter_id", name=op.f("pk_referral_counters")
        ),
    )
    op.create_table(
        "referral_qualifications",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("activity_id", sa.UUID(), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("invitee_id", sa.String(length=128), nullable=False),
        sa.Column("inviter_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("achieved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id",
            "activity_id",
            "rule_id",
            "invitee_id",
            name=op.f("pk_referral_qualifications"),
        ),
        sa.UniqueConstraint(
            "tenant_id",
            "activity_id",
            "rule_id",
            "inviter_id",
            "seq",
            name=op.f("uq_referral_qualifications_tenant_id_activity_id_rule_id_inviter_id_seq"),
        ),
    )
    op.create_index(
        "ix_referral_qualifications_inviter",
        "referral_qualifications",
        ["tenant_id", "inviter_id"],
        unique=False,
    )
    op.create_table(
        "regular_participations",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("inviter_id", sa.String(length=128), nullable=False),
        sa.Column("activity_id", sa.UUID(), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "inviter_id", name=op.f("pk_regular_participations")),
    )
    op.create_table(
        "tenant_settings",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("base_currency", sa.String(length=3), nullable=False),
        sa.Column("daily_run_at", sa.String(length=5), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_settings")),
    )
    op.add_column(
        "grants", sa.Column("new_user_reward", sa.Boolean(), server_default="false", nullable=False)
    )
    op.create_index(
        "ix_grants_tenant_user_new_user",
        "grants",
        ["tenant_id", "user_id", "new_user_reward"],
        unique=False,
    )
    op.create_index(
        "ix_events_tenant_type_occurred",
        "events",
        ["tenant_id", "type", "occurred_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_events_tenant_type_occurred", table_name="events")
    op.drop_index("ix_grants_tenant_user_new_user", table_name="grants")
    op.drop_column("grants", "new_user_reward")
    op.drop_table("tenant_settings")
    op.drop_table("regular_participations")
    op.drop_index("ix_referral_qualifications_inviter", table_name="referral_qualifications")
    op.drop_table("referral_qualifications")
    op.drop_table("referral_counters")
    op.drop_table("prize_cap_counters")
    op.drop_table("fx_rates")
    op.drop_table("evaluation_outcomes")
    op.drop_table("devices")
    op.drop_table("daily_runs")
