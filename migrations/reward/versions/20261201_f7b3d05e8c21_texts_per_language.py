"""texts per language

Reward records (and manual issuances) keep the activity's name and the prize's title in
each language, so the user's views follow their language.

Revision ID: f7b3d05e8c21
Revises: 7d2c5e8a1f94
Create Date: 2026-12-01 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f7b3d05e8c21"
down_revision: str | None = "7d2c5e8a1f94"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reward_records", sa.Column("prize_title", postgresql.JSONB(), nullable=True))
    op.add_column(
        "reward_records", sa.Column("activity_names", postgresql.JSONB(), nullable=True)
    )
    op.add_column(
        "reward_center_issuances",
        sa.Column("activity_names", postgresql.JSONB(), nullable=True),
    )
    # Records from before keep their prize's current title (coupons had one); their activity
    # name stays the single one they were given.
    op.execute(
        "UPDATE reward_records r SET prize_title = p.details -> 'title' "
        "FROM prizes p WHERE p.id = r.prize_id AND p.tenant_id = r.tenant_id "
        "AND jsonb_typeof(p.details -> 'title') = 'object'"
    )


def downgrade() -> None:
    op.drop_column("reward_center_issuances", "activity_names")
    op.drop_column("reward_records", "activity_names")
    op.drop_column("reward_records", "prize_title")
