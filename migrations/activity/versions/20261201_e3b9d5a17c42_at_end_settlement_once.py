"""at-end settlement once

An at-end activity pays one tier of a cumulative task per user, ever (SPEC §1.5, §6): the
settlement grant carries the task in ``settlement``, unique per (tenant, activity, user),
so a catch-up run that now reaches another tier cannot add a second reward.

Revision ID: e3b9d5a17c42
Revises: 3f8b1d6c2a97
Create Date: 2026-12-01 05:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e3b9d5a17c42"
down_revision: str | None = "3f8b1d6c2a97"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CUMULATIVE = (
    "net_transfer_in",
    "net_deposit",
    "net_position_transfer",
    "deposit_reached",
    "transfer_reached",
    "net_asset_reached",
)


def upgrade() -> None:
    op.add_column("grants", sa.Column("settlement", sa.String(40), nullable=True))
    # Settlement grants made before: the first per (activity, user, task) holds the slot;
    # a second one a catch-up run already made stays a grant of its own, without the slot.
    tasks = ", ".join(f"'{task}'" for task in CUMULATIVE)
    op.execute(
        sa.text(
            f"""
            UPDATE grants SET settlement = g.task
            FROM (
                SELECT DISTINCT ON (tenant_id, activity_id, user_id, task) id, task
                FROM grants
                WHERE grant_key LIKE '%\\:end' AND task IN ({tasks})
                ORDER BY tenant_id, activity_id, user_id, task, created_at, id
            ) AS g
            WHERE grants.id = g.id
            """
        )
    )
    op.create_index(
        "uq_grants_settlement",
        "grants",
        ["tenant_id", "activity_id", "user_id", "settlement"],
        unique=True,
        postgresql_where=sa.text("settlement IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_grants_settlement", table_name="grants")
    op.drop_column("grants", "settlement")
