"""outbox delivery tracking

A sent message stays owed until its job has finished (delivery_id, delivered_at,
last_error).

Revision ID: 7c1e5a9b2d31
Revises: 0405277f8895
Create Date: 2026-12-01 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1e5a9b2d31"
down_revision: str | None = "0405277f8895"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox_messages", sa.Column("delivery_id", sa.String(200), nullable=True))
    op.add_column(
        "outbox_messages", sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("outbox_messages", sa.Column("last_error", sa.Text(), nullable=True))
    # Messages sent before this revision were handed to Redis with no way to confirm them;
    # count them as delivered rather than send them all again.
    op.execute("UPDATE outbox_messages SET delivered_at = sent_at WHERE sent_at IS NOT NULL")
    op.create_index(
        "ix_outbox_messages_in_flight",
        "outbox_messages",
        ["sent_at"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NOT NULL AND delivered_at IS NULL"),
    )
    # The grant ledger keeps the newest record status it has seen.
    op.add_column("grants", sa.Column("record_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("grants", "record_version")
    op.drop_index(
        "ix_outbox_messages_in_flight",
        table_name="outbox_messages",
        postgresql_where=sa.text("sent_at IS NOT NULL AND delivered_at IS NULL"),
    )
    op.drop_column("outbox_messages", "last_error")
    op.drop_column("outbox_messages", "delivered_at")
    op.drop_column("outbox_messages", "delivery_id")
