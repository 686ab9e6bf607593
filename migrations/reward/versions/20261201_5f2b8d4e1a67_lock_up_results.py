"""lock-up results

The outcome of a lock-up check (held / broken, when, why) is kept on the record, so a
reward issued at once can still be checked at expiry and flagged when its lock was broken.
A partial index finds the lock-ups still running.

Revision ID: 5f2b8d4e1a67
Revises: 7d3b9e51c2a8
Create Date: 2026-12-01 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5f2b8d4e1a67"
down_revision: str | None = "7d3b9e51c2a8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reward_records", sa.Column("lock_result", sa.String(16), nullable=True))
    op.add_column(
        "reward_records",
        sa.Column("lock_settled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("reward_records", sa.Column("lock_detail", sa.String(500), nullable=True))
    op.create_index(
        "ix_reward_records_lock_running",
        "reward_records",
        ["lock_expires_at"],
        postgresql_where=sa.text("lock_result IS NULL AND lock_expires_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_reward_records_lock_running", table_name="reward_records")
    op.drop_column("reward_records", "lock_detail")
    op.drop_column("reward_records", "lock_settled_at")
    op.drop_column("reward_records", "lock_result")
