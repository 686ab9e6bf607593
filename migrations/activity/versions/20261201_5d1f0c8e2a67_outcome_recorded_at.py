"""outcome recorded at

When the database recorded an evaluation outcome, so explain can tell an outcome from the
facts (events received, grants created) that arrived after it, whatever the service clock.

Revision ID: 5d1f0c8e2a67
Revises: e3b9d5a17c42
Create Date: 2026-12-01 05:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d1f0c8e2a67"
down_revision: str | None = "e3b9d5a17c42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "evaluation_outcomes",
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_column("evaluation_outcomes", "recorded_at")
