"""share links and unbinding

A binding made through an activity's share link records the activity's code; an unbinding
is kept in the history with no inviter after it.

Revision ID: 5b7e2c9a4d10
Revises: e12866396c03
Create Date: 2026-12-01 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7e2c9a4d10"
down_revision: str | None = "e12866396c03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bindings", sa.Column("activity_code", sa.String(32), nullable=True))
    op.add_column("binding_history", sa.Column("activity_code", sa.String(32), nullable=True))
    op.alter_column("binding_history", "inviter_id", existing_type=sa.String(128), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM binding_history WHERE inviter_id IS NULL")
    op.alter_column("binding_history", "inviter_id", existing_type=sa.String(128), nullable=False)
    op.drop_column("binding_history", "activity_code")
    op.drop_column("bindings", "activity_code")
