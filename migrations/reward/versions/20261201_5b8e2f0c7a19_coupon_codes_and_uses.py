"""coupon codes and uses

Coupons get a redemption code (unique per tenant) so broker systems can mark them used,
and remember who used them with which reference, so a repeated use is answered the same.

Revision ID: 5b8e2f0c7a19
Revises: 9e3a7c1d4f53
Create Date: 2026-12-01 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b8e2f0c7a19"
down_revision: str | None = "9e3a7c1d4f53"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("wallet_coupons", sa.Column("code", sa.String(32), nullable=True))
    op.add_column("wallet_coupons", sa.Column("used_by", sa.String(160), nullable=True))
    op.add_column("wallet_coupons", sa.Column("used_reference", sa.String(128), nullable=True))
    # Coupons issued before codes existed get their id's 32 hex digits: unique, and the
    # app already shows the id.
    op.execute("UPDATE wallet_coupons SET code = upper(replace(id::text, '-', ''))")
    op.alter_column("wallet_coupons", "code", nullable=False)
    op.create_unique_constraint(
        "uq_wallet_coupons_tenant_id_code", "wallet_coupons", ["tenant_id", "code"]
    )


def downgrade() -> None:
    op.drop_constraint("uq_wallet_coupons_tenant_id_code", "wallet_coupons", type_="unique")
    op.drop_column("wallet_coupons", "used_reference")
    op.drop_column("wallet_coupons", "used_by")
    op.drop_column("wallet_coupons", "code")
