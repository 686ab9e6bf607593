"""payout account

The account the cash system credited, shown as the record's account issued to.

Revision ID: e2a94c1f6d30
Revises: e6feb3d97314
Create Date: 2026-12-01 05:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e2a94c1f6d30"
down_revision: str | None = "e6feb3d97314"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("cash_payouts", sa.Column("account_id", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("cash_payouts", "account_id")
