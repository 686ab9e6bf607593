"""initial

Revision ID: f3c6d73a35b2
Revises:
Create Date: 2026-11-23 10:39:56.805675
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f3c6d73a35b2"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "binding_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("invitee_id", sa.String(length=128), nullable=False),
        sa.Column("node", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("previous_inviter_id", sa.String(length=128), nullable=True),
        sa.Column("inviter_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_binding_history")),
    )
    op.create_index(
        "ix_binding_history_tenant_invitee",
        "binding_history",
        ["tenant_id", "invitee_id"],
        unique=False,
    )
    op.create_table(
        "bindings",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("invitee_id", sa.String(length=128), nullable=False),
        sa.Column("inviter_id", sa.String(length=128), nullable=False),
        sa.Column("node", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=True),
        sa.Column("operator_id", sa.String(length=160), nullable=True),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bindings")),
        sa.UniqueConstraint(
            "tenant_id", "invitee_id", "node", name=op.f("uq_bindings_tenant_id_invitee_id_node")
        ),
    )
    op.create_index(
        "ix_bindings_tenant_inviter_node",
        "bindings",
        ["tenant_id", "inviter_id", "node", "bound_at"],
        unique=False,
    )
    op.create_index(
        "ix_bindings_tenant_node_created",
        "bindings",
        ["tenant_id", "node", "created_at"],
        unique=False,
    )
    op.create_table(
        "invite_codes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_codes")),
        sa.UniqueConstraint(
            "tenant_id", "app_id", "code", name=op.f("uq_invite_codes_tenant_id_app_id_code")
        ),
        sa.UniqueConstraint(
            "tenant_id", "app_id", "user_id", name=op.f("uq_invite_codes_tenant_id_app_id_user_id")
        ),
    )
    op.create_table(
        "node_completions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("node", sa.String(length=20), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_completions")),
        sa.UniqueConstraint(
            "tenant_id", "user_id", "node", name=op.f("uq_node_completions_tenant_id_user_id_node")
        ),
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
    op.drop_table("node_completions")
    op.drop_table("invite_codes")
    op.drop_index("ix_bindings_tenant_node_created", table_name="bindings")
    op.drop_index("ix_bindings_tenant_inviter_node", table_name="bindings")
    op.drop_table("bindings")
    op.drop_index("ix_binding_history_tenant_invitee", table_name="binding_history")
    op.drop_table("binding_history")
