"""referral role of a reward record

Whether a record rewards the inviter or the invitee of a referral, so the app can total
what a user earned by inviting.

Revision ID: 7d3b9e51c2a8
Revises: f7b3d05e8c21
Create Date: 2026-12-01 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d3b9e51c2a8"
down_revision: str | None = "f7b3d05e8c21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reward_records", sa.Column("referral_role", sa.String(8), nullable=True))
    op.create_index(
        "ix_reward_records_tenant_inviter",
        "reward_records",
        ["tenant_id", "user_id"],
        unique=False,
        postgresql_where=sa.text("referral_role = 'inviter'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_reward_records_tenant_inviter",
        table_name="reward_records",
        postgresql_where=sa.text("referral_role = 'inviter'"),
    )
    op.drop_column("reward_records", "referral_role")
