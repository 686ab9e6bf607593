"""grants without payload

A grant's ``reward.create_from_grant`` message carries its payload (the outbox row); the
grant itself kept a copy of it that nothing read, about a kilobyte written per grant. The
copy is dropped: a grant's columns say what was granted, its outbox message what was sent.

Revision ID: 6e2a9c4b7d15
Revises: 9f7cdf717443
Create Date: 2026-12-02 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "6e2a9c4b7d15"
down_revision: str | None = "9f7cdf717443"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("grants", "payload")


def downgrade() -> None:
    # The copies are gone: grants made meanwhile come back without one.
    op.add_column("grants", sa.Column("payload", postgresql.JSONB(), nullable=True))
