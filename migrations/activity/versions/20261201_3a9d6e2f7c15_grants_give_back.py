"""grants give back

A grant records whether it holds a slot of its prize's per-user cap (``cap_slot``) and
when its cancelled reward gave that slot back (``given_back_at``), so a cancellation frees
the slot exactly once. Grants made under a cap before this revision are marked as holding
a slot.

Revision ID: 3a9d6e2f7c15
Revises: 03ac0aa7c197
Create Date: 2026-12-01 05:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3a9d6e2f7c15"
down_revision: str | None = "03ac0aa7c197"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "grants",
        sa.Column("cap_slot", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("grants", sa.Column("given_back_at", sa.DateTime(timezone=True)))
    op.execute(
        """
        UPDATE grants AS g SET cap_slot = true
        FROM activities AS a
        WHERE a.id = g.activity_id AND EXISTS (
            SELECT 1 FROM jsonb_array_elements(COALESCE(a.config -> 'prize_limits', '[]'))
                AS l(limit_)
            WHERE l.limit_ ->> 'prize_id' = CAST(g.prize_id AS text)
        )
        """
    )


def downgrade() -> None:
    op.drop_column("grants", "given_back_at")
    op.drop_column("grants", "cap_slot")
