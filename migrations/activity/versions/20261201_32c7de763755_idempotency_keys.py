"""idempotency keys replace per-table keys

One table of Idempotency-Keys with their stored responses, shared by every creating POST
(see service_kit.idempotency). The keys kept on activities, teams and
assists by the earlier hand-written replays are dropped.

Revision ID: 32c7de763755
Revises: a4c7e2f91b38
Create Date: 2026-12-01 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "32c7de763755"
down_revision: str | None = "a4c7e2f91b38"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create_keys_table() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("caller", sa.String(200), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("tenant_id", "caller", "key", name=op.f("pk_idempotency_keys")),
    )


def upgrade() -> None:
    _create_keys_table()
    op.drop_column("activities", "idempotency_key")  # its unique constraint goes with it
    op.drop_column("activities", "request_hash")
    op.drop_column("teams", "idempotency_key")  # its unique constraint goes with it
    op.drop_column("team_assists", "idempotency_key")  # its unique constraint goes with it


def downgrade() -> None:
    op.add_column("activities", sa.Column("idempotency_key", sa.String(128), nullable=True))
    op.add_column("activities", sa.Column("request_hash", sa.String(64), nullable=True))
    op.create_unique_constraint(
        op.f("uq_activities_tenant_id_idempotency_key"),
        "activities",
        ["tenant_id", "idempotency_key"],
    )
    op.add_column("teams", sa.Column("idempotency_key", sa.String(128), nullable=True))
    op.create_unique_constraint(
        op.f("uq_teams_tenant_id_initiator_id_idempotency_key"),
        "teams",
        ["tenant_id", "initiator_id", "idempotency_key"],
    )
    op.add_column("team_assists", sa.Column("idempotency_key", sa.String(128), nullable=True))
    op.create_unique_constraint(
        op.f("uq_team_assists_tenant_id_helper_id_idempotency_key"),
        "team_assists",
        ["tenant_id", "helper_id", "idempotency_key"],
    )
    op.drop_table("idempotency_keys")
