"""activity budgets

Totals per prize over an activity (``prize_total_counters``) and the budget an activity
has spent (``activity_budget_spend``), each taken by a conditional upsert like the per-user
caps; each row carries its limit and a CHECK keeps it within (the last guard). A grant records what it took (``total_slot``,
``budget_cost``) so a cancelled reward gives exactly that back.

Revision ID: 8b4f1c7e9d26
Revises: 3a9d6e2f7c15
Create Date: 2026-12-01 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8b4f1c7e9d26"
down_revision: str | None = "3a9d6e2f7c15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "grants",
        sa.Column("total_slot", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("grants", sa.Column("budget_cost", sa.Numeric(20, 6)))
    op.create_table(
        "prize_total_counters",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("activity_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("prize_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.CheckConstraint("count >= 0", name=op.f("ck_prize_total_counters_count_not_negative")),
        sa.CheckConstraint("count <= total", name=op.f("ck_prize_total_counters_within_total")),
        sa.PrimaryKeyConstraint(
            "tenant_id", "activity_id", "prize_id", name=op.f("pk_prize_total_counters")
        ),
    )
    op.create_table(
        "activity_budget_spend",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("activity_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("spent", sa.Numeric(20, 6), nullable=False),
        sa.Column("budget", sa.Numeric(20, 6), nullable=False),
        sa.CheckConstraint("spent >= 0", name=op.f("ck_activity_budget_spend_spent_not_negative")),
        sa.CheckConstraint("spent <= budget", name=op.f("ck_activity_budget_spend_within_budget")),
        sa.PrimaryKeyConstraint("tenant_id", "activity_id", name=op.f("pk_activity_budget_spend")),
    )


def downgrade() -> None:
    op.drop_table("activity_budget_spend")
    op.drop_table("prize_total_counters")
    op.drop_column("grants", "budget_cost")
    op.drop_column("grants", "total_slot")
