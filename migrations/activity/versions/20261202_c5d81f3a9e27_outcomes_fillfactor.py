"""evaluation_outcomes: pages filled to 70%

Each daily run rewrites the outcome of every user with events in scope, every activity and
rule, whether it changed or not (explain reads an outcome's ``recorded_at`` as the last
time the rule was decided). On full pages each new version went to another page with a new
primary key entry; with room left on the page it stays beside the old one (a HOT update),
and the old one is pruned there. Over a 30-day sandbox advance the upserts' statement time
fell by about half (3.2 s to 1.8 s). Rows written before keep their pages until rewritten.

Revision ID: c5d81f3a9e27
Revises: b7e41c9d2f06
Create Date: 2026-12-02 12:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c5d81f3a9e27"
down_revision: str | None = "b7e41c9d2f06"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE evaluation_outcomes SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE evaluation_outcomes RESET (fillfactor)")
