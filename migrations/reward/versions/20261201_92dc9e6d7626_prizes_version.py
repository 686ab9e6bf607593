"""prizes version

The ETag of the prizes: an edit sends it back in If-Match and is refused when
another edit was saved meanwhile. Existing rows start at version 1.

Revision ID: 92dc9e6d7626
Revises: e2a94c1f6d30
Create Date: 2026-12-01 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "92dc9e6d7626"
down_revision: str | None = "e2a94c1f6d30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("prizes", sa.Column("version", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    op.drop_column("prizes", "version")
