"""sandbox clocks

A sandbox tenant's own time (SPEC §6): one row per sandbox tenant.

Revision ID: a4c7e2f91b10
Revises: 8b4f1c7e9d26
Create Date: 2026-12-01 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a4c7e2f91b10"
down_revision: str | None = "8b4f1c7e9d26"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sandbox_clocks",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("now", sa.DateTime(timezone=True), nullable=False),
        sa.Column("target", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_sandbox_clocks")),
    )


def downgrade() -> None:
    op.drop_table("sandbox_clocks")
