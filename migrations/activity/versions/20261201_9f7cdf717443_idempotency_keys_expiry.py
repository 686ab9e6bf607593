"""idempotency keys expire

An index on `idempotency_keys.created_at`: the worker's hourly `idempotency.expire` job
finds the keys past their retention by it, oldest first (see service_kit.idempotency).

Revision ID: 9f7cdf717443
Revises: a4c7e2f91b10
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9f7cdf717443"
down_revision: str | None = "a4c7e2f91b10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
