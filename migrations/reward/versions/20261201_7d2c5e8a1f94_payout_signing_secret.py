"""payout signing secret

The key of the HMAC signature of the calls to a tenant's cash system.

Revision ID: 7d2c5e8a1f94
Revises: 92dc9e6d7626
Create Date: 2026-12-01 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d2c5e8a1f94"
down_revision: str | None = "92dc9e6d7626"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payout_endpoints", sa.Column("signing_secret", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("payout_endpoints", "signing_secret")
