"""activity config, segments, audit

Revision ID: 1992c46c60cb
Revises: 38a4e39da841
Create Date: 2026-11-23 10:48:58.242275
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "1992c46c60cb"
down_revision: str | None = "38a4e39da841"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activity_audit",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("activity_id", sa.UUID(), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_audit")),
    )
    op.create_index(
        "ix_activity_audit_tenant_activity_created",
        "activity_audit",
        ["tenant_id", "activity_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "segments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("external_url", sa.String(length=1000), nullable=True),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("last_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_refresh_error", sa.String(length=2000), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_segments_tenant_id_name")),
    )
    op.create_table(
        "segment_members",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("segment_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_members_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_members")),
    )
    op.create_index(
        "ix_segment_members_lookup",
        "segment_members",
        ["segment_id", "user_id", "added_at"],
        unique=False,
    )
    op.create_index(
        "uq_segment_members_open",
        "segment_members",
        ["segment_id", "user_id"],
        unique=True,
        postgresql_where=sa.text("removed_at IS NULL"),
    )
    # Existing activities get their tenant sequence numbers in creation order.
    op.add_column("activities", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE activities a SET seq = n.rn FROM ("
        " SELECT id, row_number() OVER (PARTITION BY tenant_id ORDER BY created_at, id) AS rn"
        " FROM activities) n WHERE a.id = n.id"
    )
    op.alter_column("activities", "seq", nullable=False)
    op.create_unique_constraint(
        op.f("uq_activities_tenant_id_seq"), "activities", ["tenant_id", "seq"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_activities_tenant_id_seq"), "activities", type_="unique")
    op.drop_column("activities", "seq")
    op.drop_index(
        "uq_segment_members_open",
        table_name="segment_members",
        postgresql_where=sa.text("removed_at IS NULL"),
    )
    op.drop_index("ix_segment_members_lookup", table_name="segment_members")
    op.drop_table("segment_members")
    op.drop_table("segments")
    op.drop_index("ix_activity_audit_tenant_activity_created", table_name="activity_audit")
    op.drop_table("activity_audit")
