"""outbox delivery tracking

A sent message stays owed until its job has finished (delivery_id, delivered_at,
last_error).

Revision ID: 9e3a7c1d4f53
Revises: 41e8f609a1d8
Create Date: 2026-12-01 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9e3a7c1d4f53"
down_revision: str | None = "41e8f609a1d8"
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


def downgrade() -> None:
    op.drop_index(
        "ix_outbox_messages_in_flight",
        table_name="outbox_messages",
        postgresql_where=sa.text("sent_at IS NOT NULL AND delivered_at IS NULL"),
    )
    op.drop_column("outbox_messages", "last_error")
    op.drop_column("outbox_messages", "delivered_at")
    op.drop_column("outbox_messages", "delivery_id")
