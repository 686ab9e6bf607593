"""activity catalog versions

One version per tenant, moved by a trigger whenever any of its activities is created,
changed or deleted, so evaluation workers can keep each tenant's published activities in
memory and reload them only when the version moved. Versions come from one sequence, so a
version is never given twice (not even after the tables are emptied).

Revision ID: a4c7e2f91b38
Revises: 7c1e5a9b2d31
Create Date: 2026-12-01 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a4c7e2f91b38"
down_revision: str | None = "7c1e5a9b2d31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE activity_catalog_version_seq")
    op.create_table(
        "activity_catalog_versions",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    # A trigger rather than application code: every path that writes activities (API,
    # migrations, an operator's SQL console) moves the counter, so no cache can go stale.
    op.execute(
        """
        CREATE FUNCTION bump_activity_catalog_version() RETURNS trigger AS $$
        BEGIN
            INSERT INTO activity_catalog_versions (tenant_id, version)
            SELECT tenant_id, nextval('activity_catalog_version_seq')
            FROM (SELECT DISTINCT tenant_id FROM changed_activities) AS changed
            ON CONFLICT (tenant_id) DO UPDATE SET version = EXCLUDED.version;
            RETURN NULL;
        END $$ LANGUAGE plpgsql
        """
    )
    for action, table in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
        op.execute(
            f"""
            CREATE TRIGGER activities_catalog_version_{action.lower()}
            AFTER {action} ON activities
            REFERENCING {table} TABLE AS changed_activities
            FOR EACH STATEMENT EXECUTE FUNCTION bump_activity_catalog_version()
            """
        )
    op.execute(
        "INSERT INTO activity_catalog_versions (tenant_id, version) "
        "SELECT tenant_id, nextval('activity_catalog_version_seq') "
        "FROM (SELECT DISTINCT tenant_id FROM activities) AS existing"
    )


def downgrade() -> None:
    for action in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER activities_catalog_version_{action} ON activities")
    op.execute("DROP FUNCTION bump_activity_catalog_version()")
    op.drop_table("activity_catalog_versions")
    op.execute("DROP SEQUENCE activity_catalog_version_seq")
