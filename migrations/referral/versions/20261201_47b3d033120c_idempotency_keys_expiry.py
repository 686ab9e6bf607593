"""idempotency keys expire

An index on `idempotency_keys.created_at`: the worker's hourly `idempotency.expire` job
finds the keys past their retention by it, oldest first (see service_kit.idempotency).

Revision ID: 47b3d033120c
Revises: b5d8f3a02c21
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "47b3d033120c"
down_revision: str | None = "b5d8f3a02c21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
