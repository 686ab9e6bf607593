"""tenant_settings version

The ETag of the tenant settings: an edit sends it back in If-Match and is refused when
another edit was saved meanwhile. Existing rows start at version 1.

Revision ID: 03ac0aa7c197
Revises: 5d1f0c8e2a67
Create Date: 2026-12-01 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "03ac0aa7c197"
down_revision: str | None = "5d1f0c8e2a67"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tenant_settings", sa.Column("version", sa.Integer(), server_default="1", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("tenant_settings", "version")
