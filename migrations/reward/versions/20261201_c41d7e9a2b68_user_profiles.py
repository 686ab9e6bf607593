"""user profiles

The user's phone and certified enterprise, from business events: coupons are looked up by
the user's phone (the coupon's own phone column was never written and is dropped).

Revision ID: c41d7e9a2b68
Revises: 5b8e2f0c7a19
Create Date: 2026-12-01 05:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c41d7e9a2b68"
down_revision: str | None = "5b8e2f0c7a19"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_profiles",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("phone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enterprise_id", sa.String(128), nullable=True),
        sa.Column("enterprise_name", sa.String(200), nullable=True),
        sa.Column("certified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name="pk_user_profiles"),
    )
    op.create_index("ix_user_profiles_tenant_phone", "user_profiles", ["tenant_id", "phone"])
    op.drop_index("ix_wallet_coupons_phone", table_name="wallet_coupons")
    op.drop_column("wallet_coupons", "phone")


def downgrade() -> None:
    op.add_column("wallet_coupons", sa.Column("phone", sa.String(32), nullable=True))
    op.create_index("ix_wallet_coupons_phone", "wallet_coupons", ["phone"])
    op.drop_index("ix_user_profiles_tenant_phone", table_name="user_profiles")
    op.drop_table("user_profiles")
