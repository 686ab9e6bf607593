"""events partitioned by month of arrival; event ids kept unique in event_keys

``events`` becomes a RANGE-partitioned table on ``received_at`` (one partition per month in
UTC, ``events_pYYYYMM``, plus ``events_default`` as a safety net), keyed by
(tenant_id, event_id, received_at): a key of a partitioned table must hold the partition
key, so the idempotency of (tenant_id, event_id) across months moves to ``event_keys``.

The conversion is one transaction: the old table is renamed, the new one created with the
partitions of every month it holds and three ahead, the rows copied, the old table dropped.
Nothing is lost or duplicated whatever happens mid-way (it all rolls back), but writes to
events wait for it: on a large table run it in a maintenance window (the copy is about as
fast as a bulk insert of the table).

Revision ID: 3f8b1d6c2a97
Revises: 32c7de763755
Create Date: 2026-12-01 05:10:00
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime

from alembic import op
from sqlalchemy import text

revision: str = "3f8b1d6c2a97"
down_revision: str | None = "32c7de763755"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AHEAD_MONTHS = 3

COLUMNS = """
    id uuid NOT NULL,
    tenant_id varchar(64) NOT NULL,
    event_id varchar(128) NOT NULL,
    type varchar(40) NOT NULL,
    user_id varchar(128) NOT NULL,
    app_id varchar(64) NOT NULL,
    occurred_at timestamptz NOT NULL,
    payload jsonb NOT NULL,
    received_by varchar(160) NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
"""
COPY = (
    "id, tenant_id, event_id, type, user_id, app_id, occurred_at, payload, received_by, received_at"
)


def _month(year: int, month: int) -> date:
    return date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


def _indexes() -> None:
    op.execute(
        "CREATE INDEX ix_events_tenant_user_occurred ON events (tenant_id, user_id, occurred_at)"
    )
    op.execute(
        "CREATE INDEX ix_events_tenant_type_occurred ON events (tenant_id, type, occurred_at)"
    )
    op.execute(
        "CREATE INDEX ix_events_login_device ON events "
        "(tenant_id, app_id, (payload->>'device_id'), occurred_at) WHERE type = 'app.login'"
    )


def _rename_old() -> None:
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    for index in (
        "ix_events_tenant_user_occurred",
        "ix_events_tenant_type_occurred",
        "ix_events_login_device",
    ):
        op.execute(f"ALTER INDEX IF EXISTS {index} RENAME TO {index}_old")
    op.execute("ALTER TABLE events_unpartitioned RENAME CONSTRAINT pk_events TO pk_events_old")


def upgrade() -> None:
    bind = op.get_bind()
    op.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # readers go on; writers wait
    _rename_old()
    op.execute(
        f"CREATE TABLE events ({COLUMNS}, "
        "CONSTRAINT pk_events PRIMARY KEY (tenant_id, event_id, received_at)) "
        "PARTITION BY RANGE (received_at)"
    )
    _indexes()
    oldest = bind.execute(text("SELECT min(received_at) FROM events_unpartitioned")).scalar()
    now = datetime.now(UTC)
    first = oldest if oldest is not None and oldest < now else now
    month = date(first.year, first.month, 1)
    last = _month(now.year, now.month + AHEAD_MONTHS)
    while month <= last:
        end = _month(month.year, month.month + 1)
        op.execute(
            f"CREATE TABLE events_p{month.year:04d}{month.month:02d} PARTITION OF events "
            f"FOR VALUES FROM ('{month.isoformat()} 00:00+00') TO ('{end.isoformat()} 00:00+00')"
        )
        month = end
    op.execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
    op.execute(f"INSERT INTO events ({COPY}) SELECT {COPY} FROM events_unpartitioned")

    op.execute(
        "CREATE TABLE event_keys ("
        "tenant_id varchar(64) NOT NULL, event_id varchar(128) NOT NULL, "
        "received_at timestamptz NOT NULL DEFAULT now(), "
        "CONSTRAINT pk_event_keys PRIMARY KEY (tenant_id, event_id))"
    )
    op.execute(
        "INSERT INTO event_keys (tenant_id, event_id, received_at) "
        "SELECT tenant_id, event_id, received_at FROM events_unpartitioned"
    )
    op.execute("CREATE INDEX ix_event_keys_received ON event_keys USING brin (received_at)")
    op.execute("DROP TABLE events_unpartitioned")


def downgrade() -> None:
    op.execute("LOCK TABLE events IN EXCLUSIVE MODE")
    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    op.execute("ALTER TABLE events_partitioned RENAME CONSTRAINT pk_events TO pk_events_part")
    for index in (
        "ix_events_tenant_user_occurred",
        "ix_events_tenant_type_occurred",
        "ix_events_login_device",
    ):
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_part")
    op.execute(
        f"CREATE TABLE events ({COLUMNS}, CONSTRAINT pk_events PRIMARY KEY (id), "
        "CONSTRAINT uq_events_tenant_id_event_id UNIQUE (tenant_id, event_id))"
    )
    _indexes()
    op.execute(f"INSERT INTO events ({COPY}) SELECT {COPY} FROM events_partitioned")
    op.execute("DROP TABLE events_partitioned")
    op.execute("DROP TABLE event_keys")
