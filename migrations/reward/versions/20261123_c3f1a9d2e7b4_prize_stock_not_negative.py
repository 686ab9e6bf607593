"""prize stock never negative

Revision ID: c3f1a9d2e7b4
Revises: a78771ea663c
Create Date: 2026-11-23 11:25:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c3f1a9d2e7b4"
down_revision: str | None = "a78771ea663c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_check_constraint(
        op.f("ck_prizes_stock_not_negative"), "prizes", "stock IS NULL OR stock >= 0"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_prizes_stock_not_negative"), "prizes", type_="check")
