"""initial

Revision ID: a0a26b3cdfb2
Revises:
Create Date: 2026-11-23 10:39:57.704880
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a0a26b3cdfb2"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("reward_record_number_seq")))
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
    op.create_table(
        "prizes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=True),
        sa.Column("cost_amount", sa.Numeric(precision=20, scale=6), nullable=True),
        sa.Column("cost_currency", sa.String(length=3), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prizes")),
    )
    op.create_index(op.f("ix_prizes_tenant_id"), "prizes", ["tenant_id"], unique=False)
    op.create_table(
        "reward_records",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("grant_key", sa.String(length=200), nullable=False),
        sa.Column("activity_code", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=True),
        sa.Column("counterpart_id", sa.String(length=128), nullable=True),
        sa.Column("enterprise_name", sa.String(length=200), nullable=True),
        sa.Column("task", sa.String(length=40), nullable=False),
        sa.Column("achieved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prize_id", sa.UUID(), nullable=False),
        sa.Column("prize_type", sa.String(length=16), nullable=False),
        sa.Column("issuance_form", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issued_to", sa.String(length=128), nullable=True),
        sa.Column("lock_amount", sa.Numeric(precision=20, scale=6), nullable=True),
        sa.Column("lock_currency", sa.String(length=3), nullable=True),
        sa.Column("lock_days", sa.Integer(), nullable=True),
        sa.Column("lock_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.String(length=500), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_records")),
        sa.UniqueConstraint("number", name=op.f("uq_reward_records_number")),
        sa.UniqueConstraint(
            "tenant_id", "grant_key", name=op.f("uq_reward_records_tenant_id_grant_key")
        ),
    )
    op.create_index(
        "ix_reward_records_status_updated", "reward_records", ["status", "updated_at"], unique=False
    )
    op.create_index(
        "ix_reward_records_tenant_activity_status",
        "reward_records",
        ["tenant_id", "activity_code", "status"],
        unique=False,
    )
    op.create_index(
        "ix_reward_records_tenant_user", "reward_records", ["tenant_id", "user_id"], unique=False
    )
    op.create_table(
        "wallet_coupons",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("record_id", sa.UUID(), nullable=False),
        sa.Column("prize_id", sa.UUID(), nullable=False),
        sa.Column("coupon_type", sa.String(length=32), nullable=False),
        sa.Column("title", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("instructions", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_coupons")),
        sa.UniqueConstraint("record_id", name=op.f("uq_wallet_coupons_record_id")),
    )
    op.create_index(op.f("ix_wallet_coupons_phone"), "wallet_coupons", ["phone"], unique=False)
    op.create_index(
        "ix_wallet_coupons_tenant_user", "wallet_coupons", ["tenant_id", "user_id"], unique=False
    )
    op.create_table(
        "reward_record_transitions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.UUID(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["reward_records.id"],
            name=op.f("fk_reward_record_transitions_record_id_reward_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_record_transitions")),
    )
    op.create_index(
        op.f("ix_reward_record_transitions_record_id"),
        "reward_record_transitions",
        ["record_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_reward_record_transitions_record_id"), table_name="reward_record_transitions"
    )
    op.drop_table("reward_record_transitions")
    op.drop_index("ix_wallet_coupons_tenant_user", table_name="wallet_coupons")
    op.drop_index(op.f("ix_wallet_coupons_phone"), table_name="wallet_coupons")
    op.drop_table("wallet_coupons")
    op.drop_index("ix_reward_records_tenant_user", table_name="reward_records")
    op.drop_index("ix_reward_records_tenant_activity_status", table_name="reward_records")
    op.drop_index("ix_reward_records_status_updated", table_name="reward_records")
    op.drop_table("reward_records")
    op.drop_index(op.f("ix_prizes_tenant_id"), table_name="prizes")
    op.drop_table("prizes")
    op.drop_index(
        "ix_outbox_messages_unsent",
        table_name="outbox_messages",
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.drop_table("outbox_messages")
    op.execute(sa.schema.DropSequence(sa.Sequence("reward_record_number_seq")))
