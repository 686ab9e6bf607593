"""idempotency keys replace per-table keys

One table of Idempotency-Keys with their stored responses, shared by every creating POST
(see service_kit.idempotency). The keys kept on manual issuances, batches and
record transitions by the earlier hand-written replays are dropped.

Revision ID: e6feb3d97314
Revises: c41d7e9a2b68
Create Date: 2026-12-01 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e6feb3d97314"
down_revision: str | None = "c41d7e9a2b68"
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
    op.drop_column(
        "reward_center_issuances", "idempotency_key"
    )  # its unique constraint goes with it
    op.drop_column("reward_center_issuances", "fingerprint")
    op.drop_column("reward_center_batches", "idempotency_key")  # its unique constraint goes with it
    op.drop_column("reward_center_batches", "fingerprint")
    op.drop_column(
        "reward_record_transitions", "idempotency_key"
    )  # its unique constraint goes with it


def downgrade() -> None:
    for table in ("reward_center_issuances", "reward_center_batches"):
        op.add_column(table, sa.Column("idempotency_key", sa.String(128), nullable=True))
        op.add_column(table, sa.Column("fingerprint", sa.String(64), nullable=True))
        op.create_unique_constraint(
            op.f(f"uq_{table}_tenant_id_idempotency_key"), table, ["tenant_id", "idempotency_key"]
        )
    op.add_column(
        "reward_record_transitions", sa.Column("idempotency_key", sa.String(128), nullable=True)
    )
    op.create_unique_constraint(
        op.f("uq_reward_record_transitions_record_id_idempotency_key"),
        "reward_record_transitions",
        ["record_id", "idempotency_key"],
    )
    op.drop_table("idempotency_keys")
