"""activity creation idempotency

Revision ID: d82c988393ec
Revises: dd9be6cce51e
Create Date: 2026-11-23 11:02:48.859123
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d82c988393ec"
down_revision: str | None = "dd9be6cce51e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("activities", sa.Column("idempotency_key", sa.String(length=128), nullable=True))
    op.add_column("activities", sa.Column("request_hash", sa.String(length=64), nullable=True))
    op.create_unique_constraint(
        op.f("uq_activities_tenant_id_idempotency_key"),
        "activities",
        ["tenant_id", "idempotency_key"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("uq_activities_tenant_id_idempotency_key"), "activities", type_="unique"
    )
    op.drop_column("activities", "request_hash")
    op.drop_column("activities", "idempotency_key")
