"""grants: lighter indexes for the daily run's inserts

The daily run writes millions of grants a day, and each one's index entries were most of
its cost. What reads grants by activity (the stats, the inviters a user credited) reads
them by activity alone — a (tenant, activity, user) key is not needed for it, and the one
read by (activity, user), explain's, finds the few grants of the user by the
(tenant, user) index. So that index becomes one on the activity id: a fixed 16 bytes
compared by ``memcmp``, and the many grants of one activity deduplicated into posting
lists, instead of two text columns per entry. Grant keys are compared by their bytes
(``COLLATE "C"``): an identifier has no linguistic order, and the locale's comparison
cost the unique key's inserts and the insert's conflict check. The outbox's payloads,
which carry 25 grants a message and are compressed, are compressed by LZ4 where the server
has it (pglz took about 4% of the insert's time).

Revision ID: b7e41c9d2f06
Revises: 6e2a9c4b7d15
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e41c9d2f06"
down_revision: str | None = "6e2a9c4b7d15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAYLOAD_COMPRESSION = """
DO $$
BEGIN
    ALTER TABLE outbox_messages ALTER COLUMN payload SET COMPRESSION {method};
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- a server built without LZ4 keeps its default
END $$
"""


def upgrade() -> None:
    op.create_index("ix_grants_activity", "grants", ["activity_id"])
    op.drop_index("ix_grants_tenant_activity_user", table_name="grants")
    op.alter_column(
        "grants",
        "grant_key",
        type_=sa.String(200, collation="C"),
        existing_type=sa.String(200),
        existing_nullable=False,
    )
    op.execute(_PAYLOAD_COMPRESSION.format(method="lz4"))


def downgrade() -> None:
    op.execute(_PAYLOAD_COMPRESSION.format(method="default"))
    op.alter_column(
        "grants",
        "grant_key",
        type_=sa.String(200),
        existing_type=sa.String(200, collation="C"),
        existing_nullable=False,
    )
    op.create_index(
        "ix_grants_tenant_activity_user", "grants", ["tenant_id", "activity_id", "user_id"]
    )
    op.drop_index("ix_grants_activity", table_name="grants")
