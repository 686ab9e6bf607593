"""login device index

Revision ID: 5b7e2c1d9a40
Revises: d82c988393ec
Create Date: 2026-11-23 11:36:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7e2c1d9a40"
down_revision: str | None = "d82c988393ec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_events_login_device",
        "events",
        ["tenant_id", "app_id", sa.text("(payload->>'device_id')"), "occurred_at"],
        unique=False,
        postgresql_where=sa.text("type = 'app.login'"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_login_device", table_name="events")
