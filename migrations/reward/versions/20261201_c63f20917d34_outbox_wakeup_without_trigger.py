"""outbox wake-up without a trigger

A NOTIFY in every transaction that writes outbox messages takes a database-wide lock at
commit; the processes now send one coalesced NOTIFY (or wake their own relay) instead.

Revision ID: c63f20917d34
Revises: 9e3a7c1d4f53
Create Date: 2026-12-01 02:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c63f20917d34"
down_revision: str | None = "9e3a7c1d4f53"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS outbox_messages_notify ON outbox_messages")
    op.execute("DROP FUNCTION IF EXISTS outbox_notify()")


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('outbox', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_messages_notify AFTER INSERT ON outbox_messages "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
    )
